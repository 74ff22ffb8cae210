"""Chaos Toolkit probes of the resilience-harness extension: one module per measure family
(`harness.probes.failover`, `harness.probes.replication`, ...). `chaos discover resilience-harness`
lists every module here (harness.discovery); each names its activities in `__all__`."""
