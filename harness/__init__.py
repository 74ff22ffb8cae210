"""Resilience harness: scheduled, scored, repeatable chaos experiments for multi-region systems."""


def discover(discover_system: bool = True) -> dict:
    """Chaos Toolkit's entry point (`chaos discover resilience-harness`): every activity of
    harness.actions and harness.probes with its arguments, types and docs (harness.discovery)."""
    from harness.discovery import discover as _discover  # imported late: `import harness` stays light

    return _discover(discover_system=discover_system)
