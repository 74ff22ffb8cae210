"""The one error the fault proxy's API turns into an HTTP response.

ApiError                      status + message; `extra` keys join the JSON body
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A client-visible failure: the HTTP status, the `error` text, and extra body keys."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status, **self.extra}


def bad_body(reason: str) -> ApiError:
    return ApiError(400, f"bad request body: {reason}")


def invalid_value(field: str, reason: str) -> ApiError:
    return ApiError(400, f"invalid value: {field}: {reason}")
