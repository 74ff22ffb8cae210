"""Errors the harness raises on purpose.

HarnessError                 base; the CLI prints its message on one line (exit 3)
├── ConfigError              bad input: file, field, what was expected (exit 2)
│   └── ConfigErrors         several problems of one file, one line each (exit 2)
├── EnvironmentProblem       a server, binary or port the run needs is missing (exit 3)
├── FaultsOpen               the fault ledger holds faults not yet undone (exit 3)
└── TargetBusy               another run holds the target's lock (exit 3)
"""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class ConfigError(HarnessError):
    """Bad input: names the file and field, what was expected and what was found."""

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        where = f"{path}:{field}" if field else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.field, self.problem = str(path), field, problem


class ConfigErrors(ConfigError):
    """Every problem found in one file; its message is one line per problem."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.path, first.field, first.problem)
        self.errors = list(errors)
        self.args = ("\n".join(str(error) for error in errors),)

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


def raise_all(errors: list[ConfigError]) -> None:
    """Nothing if `errors` is empty, the one error, or all of them together."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigErrors(errors)


class EnvironmentProblem(HarnessError):
    """Something outside the input is missing or broken: a binary, a server, a port."""


class FaultsOpen(HarnessError):
    """Faults from an earlier run were never undone."""


class TargetBusy(HarnessError):
    """Another run holds the lock on this target."""
