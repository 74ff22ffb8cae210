"""Chaos Toolkit actions of the resilience-harness extension: one module per kind of fault
(`harness.actions.network`, `harness.actions.instances`, ...). `chaos discover resilience-harness`
lists every module here (harness.discovery); each names its activities in `__all__`."""
