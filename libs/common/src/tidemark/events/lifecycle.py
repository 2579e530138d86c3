"""A run's lifecycle, declared once: its states, triggers, error kinds and the one rule for moving it.

Events of one run come from different services (orchestrator, ingest, its worker) and may arrive
late or twice. Every service changes a run's status only through :func:`may_move`, so a late or
repeated event never moves a run backwards and nothing moves a run out of a terminal state.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args


class RunStatus(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIALLY_SUCCEEDED = "partially_succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


# A run is active from the request until it ends; at most one per pipeline (overlap policy `skip`).
ACTIVE: frozenset[RunStatus] = frozenset({RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING})
TERMINAL: frozenset[RunStatus] = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.PARTIALLY_SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}
)

# The order a run goes through. The terminal states share the last rank: which one a run ends in
# is decided once, by whoever ends it first.
_RANK: dict[RunStatus, int] = {
    RunStatus.SCHEDULED: 0,
    RunStatus.QUEUED: 1,
    RunStatus.STARTING: 2,
    RunStatus.RUNNING: 3,
    **dict.fromkeys(TERMINAL, 4),
}

Trigger = Literal["manual", "schedule", "dependency", "retry", "maintenance"]
TRIGGERS: tuple[Trigger, ...] = get_args(Trigger)

ErrorKind = Literal["config", "transient", "terminal"]
"""Whether a retry can help: ``config`` (no, until the user changes something), ``transient`` (yes),
``terminal`` (no)."""
ERROR_KINDS: tuple[ErrorKind, ...] = get_args(ErrorKind)


def may_move(current: RunStatus | str, new: RunStatus | str) -> bool:
    """True when a run in ``current`` may change to ``new``: never out of a terminal state, only
    forward in the order scheduled → queued → starting → running → an end (so never to itself)."""
    now, then = RunStatus(current), RunStatus(new)
    return not now.terminal and _RANK[then] > _RANK[now]
