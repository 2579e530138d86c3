"""The one exception hierarchy of Tidemark.

Every error says which kind of failure it is, because callers act on the kind:
a *config* error needs a human to change something, a *transient* error is
worth retrying, a *terminal* error will fail again the same way. Boundaries
(HTTP handlers, event consumers, the worker) translate library exceptions into
these with ``raise ... from e`` and turn them into RFC 9457 problems.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class FailureKind(StrEnum):
    CONFIG = "config"
    TRANSIENT = "transient"
    TERMINAL = "terminal"


class TidemarkError(Exception):
    """Root of every Tidemark error.

    ``message`` is safe to show a user (it never holds secrets); ``detail`` may
    carry structured, equally safe context for problem responses and events.
    """

    kind: FailureKind = FailureKind.TERMINAL
    status_code: int = 500
    problem_type: str = "internal"
    title: str = "Internal error"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class ConfigError(TidemarkError):
    """The user's configuration is wrong: fix it, retrying will not help."""

    kind = FailureKind.CONFIG
    status_code = 422
    problem_type = "invalid-config"
    title = "Invalid configuration"


class TransientError(TidemarkError):
    """Something we depend on is unavailable right now; retrying may succeed."""

    kind = FailureKind.TRANSIENT
    status_code = 503
    problem_type = "unavailable"
    title = "Dependency unavailable"


class TerminalError(TidemarkError):
    """A failure that will repeat on retry (a bug, corrupt data, an impossible request)."""

    kind = FailureKind.TERMINAL
    status_code = 500
    problem_type = "internal"
    title = "Internal error"


class NotFoundError(ConfigError):
    status_code = 404
    problem_type = "not-found"
    title = "Not found"


class ConflictError(ConfigError):
    status_code = 409
    problem_type = "conflict"
    title = "Conflict"


class AuthenticationError(ConfigError):
    status_code = 401
    problem_type = "unauthorized"
    title = "Unauthorized"


class PermissionDeniedError(ConfigError):
    """A known token whose scope does not allow the request."""

    status_code = 403
    problem_type = "forbidden"
    title = "Forbidden"


class SourceError(TidemarkError):
    """A source (database, bucket, API) refused or failed; ``kind`` says how."""

    problem_type = "source-error"
    title = "Source error"
    status_code = 422

    def __init__(self, message: str, kind: FailureKind = FailureKind.TERMINAL, **detail: Any) -> None:
        super().__init__(message, **detail)
        self.kind = kind
        if kind is FailureKind.TRANSIENT:
            self.status_code = 503


class ReconciliationError(TerminalError):
    """A stream's counts disagree: the rows the source held, the rows read and the rows about to be
    committed must be equal, and were not. Raised before the commit, so the table stays as it was.
    ``detail`` holds the numbers. Terminal: rows lost inside Tidemark are a bug a retry would repeat."""

    problem_type = "reconciliation"
    title = "Row counts do not reconcile"
