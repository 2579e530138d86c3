"""What ``run.started`` and ``run.finished`` (from ingest-svc) do to runs, applied as a set.

Events fetched together are applied in one transaction with a few statements for all of them (the
runs moved in one statement per event type, the pipelines involved read at once), not a few each:
a busy platform ends runs by thousands a minute, in the same event loop as the scheduler. The
effect is the one applying them one at a time in delivery order would have, rule for rule
(``may_move``: forward only and never out of an end; retries; dependency runs; maintenance; a
due tick that waited for the run; admission), and a single event is a set of one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.events import Envelope, EventPayload, RunFinished, RunStarted, RunStatus, may_move
from tidemark_orchestrator import admission, dependencies, maintenance, repository, retries
from tidemark_orchestrator.deps import OrchestratorBatchContext, OrchestratorContext, OrchestratorRuntime
from tidemark_orchestrator.logic import request_dependency_runs
from tidemark_orchestrator.models import Run

Ending = tuple[Envelope, RunFinished]


async def on_run_events(ctx: OrchestratorBatchContext, events: Sequence[tuple[Envelope, EventPayload]]) -> None:
    """Apply run events fetched together, in delivery order, as sets (see the module doc)."""
    starts: dict[uuid.UUID, datetime] = {}
    endings: dict[uuid.UUID, Ending] = {}
    for envelope, event in events:
        if isinstance(event, RunFinished):
            # A run's second ending changes nothing: the first one is kept.
            endings.setdefault(event.run_id, (envelope, event))
        elif isinstance(event, RunStarted) and event.run_id not in endings:
            # Starts apply before endings; one delivered after its run's ending (in this batch) came
            # too late, as it would have one at a time. A second start changes nothing either.
            starts.setdefault(event.run_id, envelope.occurred_at)
    await record_starts(ctx.session, starts)
    await record_endings(ctx.runtime, ctx.session, list(endings.values()))


async def on_run_started(ctx: OrchestratorContext, event: RunStarted) -> None:
    await record_starts(ctx.session, {event.run_id: ctx.envelope.occurred_at})


async def on_run_finished(ctx: OrchestratorContext, event: RunFinished) -> None:
    await record_endings(ctx.runtime, ctx.session, [(ctx.envelope, event)])


# The states a run may leave for ``running``, from the one rule (``may_move``).
_STARTABLE = [s.value for s in RunStatus if may_move(s, RunStatus.RUNNING)]


async def record_starts(session: AsyncSession, starts: dict[uuid.UUID, datetime]) -> None:
    """Move each run to ``running`` (``started_at`` as given) when it may still move there: one
    statement for all. The state check is in the statement itself, so an ending committed meanwhile
    by another replica is never overwritten."""
    if not starts:
        return
    table = cast("sa.Table", Run.__table__)
    statement = (sa.update(table)
                 .where(table.c.id == sa.bindparam("run_id", type_=table.c.id.type),
                        # Not IN (...): an expanding list cannot go with executemany.
                        sa.or_(*(table.c.status == status for status in _STARTABLE)))
                 .values(status=RunStatus.RUNNING.value,
                         started_at=sa.bindparam("at", type_=table.c.started_at.type)))
    await session.execute(statement, [{"run_id": run_id, "at": at} for run_id, at in starts.items()])


async def record_endings(runtime: OrchestratorRuntime, session: AsyncSession, endings: Sequence[Ending]) -> None:
    """Record how runs ended (a run already ended keeps its first ending), then for each, in order:
    its retry, the dependency runs it completes, its maintenance; then admit what may start in the
    slots they held, and wake the scheduler for ticks that waited for them."""
    runs = await repository.lock_runs(session, [event.run_id for _, event in endings])
    ended: list[tuple[Run, RunFinished]] = []
    for envelope, event in endings:
        run = runs.get(event.run_id)
        if run is None or not may_move(run.status, event.status):
            continue
        run.status = event.status
        run.finished_at = envelope.occurred_at
        run.error = event.error.message if event.error else None
        ended.append((run, event))
    if not ended:
        return
    now = runtime.state.clock()
    pipeline_ids = {run.pipeline_id for run, _ in ended}
    await repository.check_due_ticks_now(session, pipeline_ids, now)  # ticks may have waited for these runs
    pipelines = await repository.pipelines_by_id(session, pipeline_ids)
    linked = await dependencies.with_edges(session, pipeline_ids)
    for run, event in ended:
        pipeline = pipelines[run.pipeline_id]
        await retries.retry_if_due(runtime, session, pipeline, run, event, now)
        if run.pipeline_id in linked:
            # A maintenance run loads nothing: it is no upstream ending for the pipelines downstream.
            await request_dependency_runs(runtime, session, run, as_upstream=run.maintenance is None)
        await maintenance.after_run(runtime, session, pipeline, run, event, now)
    if await repository.any_waiting(session):
        # The slots these runs held may be others' now. Most endings find nobody waiting, and skip
        # admission's lock and its count of every active run.
        await admission.admit(runtime, session, now)
    # A tick waiting for one of these runs may fire now: wake the scheduler once this is committed.
    wakeup = runtime.state.scheduler_wakeup
    sa.event.listen(session.sync_session, "after_commit", lambda _s: wakeup.set(), once=True)
