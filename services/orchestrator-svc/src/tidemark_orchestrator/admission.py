"""Admission: a queued run waits for its turn, then gets a slot and is sent to the workers.

A run enters ``queued`` (:func:`enqueue`: a manual trigger, a dependency, a retry, a due schedule
tick) with ``run.queued``. :func:`admit` then walks the waiting runs first come first served and
admits each one that may start: its retry backoff is over, no other run of its pipeline holds a
slot, and there is a free slot under the global limit (``max_active_runs``) and its connection's
(``max_active_runs_per_connection`` or ``connection_run_limits``). Admitting sets ``admitted_at`` and
emits ``run.requested``, which ingest-svc launches. A run that cannot start keeps waiting, and its
reason (``waiting_reason``, ``run.waiting`` when it changes) says why.

A run holds its slot from admission until it ends. Slots free up when a run ends, so
``run_events.record_endings`` admits again, as do the scheduler's passes (for backoffs that ran out).

One admission at a time across replicas: :func:`admit` runs under a transaction-scoped advisory
lock on PostgreSQL (SQLite serialises writers by itself), so two replicas never both count a free
slot and fill it twice.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.events import (
    ACTIVE,
    EventPayload,
    RunError,
    RunFinished,
    RunQueued,
    RunRequested,
    RunStatus,
    RunWaiting,
    Trigger,
)
from tidemark.events.contracts import MaintenanceRequest
from tidemark.ids import new_id
from tidemark_orchestrator import repository
from tidemark_orchestrator.deps import OrchestratorRuntime
from tidemark_orchestrator.models import Pipeline, Run
from tidemark_orchestrator.settings import OrchestratorSettings
from tidemark_orchestrator.specs import pipeline_spec

ADMISSION_LOCK = 0x7469646D61646D  # "tidmadm": any constant naming "who admits runs"
# Waiting runs looked at per pass; the rest wait for the next one (they are behind these in line).
BATCH = 2_000


async def enqueue(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline, trigger: Trigger,
                  now: datetime, *, attempt: int = 1, retry_of: uuid.UUID | None = None,
                  not_before: datetime | None = None, resync: Sequence[str] = (),
                  maintenance: MaintenanceRequest | None = None) -> Run:
    """Store a new queued run with its ``run.queued``; :func:`admit` decides when it starts."""
    run = Run(id=new_id(), pipeline_id=pipeline.id, trigger=trigger, status=RunStatus.QUEUED, attempt=attempt,
              requested_at=now, connection_id=pipeline.connection_id, retry_of=retry_of, not_before=not_before,
              resync=list(dict.fromkeys(resync)) or None,
              maintenance=maintenance.model_dump(mode="json") if maintenance is not None else None)
    run.waiting_reason = _backoff(run, now)
    session.add(run)
    await session.flush()
    await announce(runtime, session, pipeline, run)
    return run


async def announce(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline, run: Run) -> None:
    """``run.queued`` for a run that just entered ``queued``."""
    await runtime.emit(session, queued_event(pipeline, run))


def queued_event(pipeline: Pipeline, run: Run) -> RunQueued:
    return RunQueued(
        run_id=run.id, pipeline_id=pipeline.id, pipeline_name=pipeline.name, connection_id=pipeline.connection_id,
        trigger=run.trigger, attempt=run.attempt, retry_of=run.retry_of, scheduled_for=run.scheduled_for,
        not_before=run.not_before, reason=run.waiting_reason)


def _fail_for_drift(pipeline: Pipeline, run: Run, now: datetime, events: list[EventPayload]) -> None:
    """A schema drift asked the pipeline's next run to fail (``drift_policy`` ``fail``, see
    ``drift.py``): this one ends ``failed`` with the drift as its reason, kind ``config`` (never
    retried: the source must be looked at), instead of starting."""
    reason = pipeline.drift_failure
    pipeline.drift_failure = None
    run.status = RunStatus.FAILED
    run.finished_at = now
    run.error = reason
    events.append(RunFinished(run_id=run.id, pipeline_id=pipeline.id, status=RunStatus.FAILED,
                              error=RunError(message=str(reason), kind="config")))


def _backoff(run: Run, now: datetime) -> str | None:
    if run.not_before is None or run.not_before <= now:
        return None
    return f"retry backoff: attempt {run.attempt} starts at {run.not_before.isoformat(timespec='seconds')}"


def _no_slot(run: Run, busy: dict[uuid.UUID, uuid.UUID], total: int, per_connection: Counter[uuid.UUID | None],
             settings: OrchestratorSettings) -> str | None:
    if run.pipeline_id in busy:
        return f"waiting for run {busy[run.pipeline_id]} of this pipeline to end"
    # The connection's limit first: the more specific reason, and one that stays put while the
    # global count moves.
    limit = settings.connection_limit(run.connection_id)
    if per_connection[run.connection_id] >= limit:
        return (f"waiting for a slot: {per_connection[run.connection_id]} of {limit} runs of connection "
                f"{run.connection_id} are active (per-connection limit)")
    if total >= settings.max_active_runs:
        return f"waiting for a slot: {total} of {settings.max_active_runs} runs are active (max_active_runs)"
    return None


async def lock_admission(session: AsyncSession) -> None:
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADMISSION_LOCK})


async def admit(runtime: OrchestratorRuntime, session: AsyncSession, now: datetime) -> list[Run]:
    """Admit every waiting run that may start now, in queue order; returns them (see module doc)."""
    await lock_admission(session)
    settings = runtime.settings
    holding = (await session.execute(
        sa.select(Run.id, Run.pipeline_id, Run.connection_id)
        .where(Run.status.in_([s.value for s in ACTIVE]), Run.admitted_at.is_not(None))
    )).all()
    busy: dict[uuid.UUID, uuid.UUID] = {row.pipeline_id: row.id for row in holding}
    per_connection = Counter(row.connection_id for row in holding)
    total = len(holding)
    waiting = (await session.scalars(
        sa.select(Run).where(Run.status == RunStatus.QUEUED.value, Run.admitted_at.is_(None))
        .order_by(Run.requested_at, Run.id).limit(BATCH)
    )).all()
    pipelines = await repository.pipelines_by_id(session, {run.pipeline_id for run in waiting})
    admitted: list[Run] = []
    events: list[EventPayload] = []
    for run in waiting:
        reason = _backoff(run, now) or _no_slot(run, busy, total, per_connection, settings)
        if reason is not None:
            if reason != run.waiting_reason:
                run.waiting_reason = reason
                events.append(RunWaiting(run_id=run.id, pipeline_id=run.pipeline_id, reason=reason))
            continue
        pipeline = pipelines[run.pipeline_id]
        if pipeline.drift_failure:
            _fail_for_drift(pipeline, run, now, events)
            continue
        run.admitted_at = now
        run.waiting_reason = None
        busy[run.pipeline_id] = run.id
        per_connection[run.connection_id] += 1
        total += 1
        admitted.append(run)
        events.append(RunRequested(
            run_id=run.id, pipeline=pipeline_spec(pipeline), trigger=run.trigger, scheduled_for=run.scheduled_for,
            attempt=run.attempt, retry_of=run.retry_of, resync=list(run.resync or []),
            timeout_seconds=pipeline.timeout_seconds,
            maintenance=MaintenanceRequest.model_validate(run.maintenance) if run.maintenance else None))
    await runtime.emit_many(session, events)
    await session.flush()
    return admitted
