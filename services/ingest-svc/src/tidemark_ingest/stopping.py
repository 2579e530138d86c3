"""Why a run is being stopped, and how it ends once its worker is gone: the one rule the service
(exit watch, reaper) and the worker (stopped by SIGTERM) both apply, whoever sees the end first."""

from __future__ import annotations

from tidemark.events import RunError, RunStatus

CANCELLED_BY_USER = "cancelled by user"
TIMEOUT = "timeout"


def timeout_reason(seconds: int) -> str:
    return f"{TIMEOUT}: still running after the pipeline's timeout_seconds ({seconds}s)"


def ending(reason: str) -> tuple[RunStatus, RunError]:
    """A timeout counts as a failure (a retry may help); any other stop is a cancel."""
    if reason.startswith(f"{TIMEOUT}:"):
        return RunStatus.FAILED, RunError(message=reason, kind="transient")
    return RunStatus.CANCELLED, RunError(message=reason, kind="terminal")
