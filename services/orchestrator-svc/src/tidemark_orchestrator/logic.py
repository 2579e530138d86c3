"""The orchestrator's rules, as plain functions tests call directly."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.errors import ConfigError, ConflictError
from tidemark.events import (
    DestinationSpec,
    RunFinished,
    RunRequested,
    RunStarted,
    RunStatus,
    StreamSpec,
    Trigger,
    may_move,
)
from tidemark_orchestrator import repository, scheduler
from tidemark_orchestrator.catalogs import Catalogs
from tidemark_orchestrator.deps import OrchestratorContext, OrchestratorRuntime
from tidemark_orchestrator.models import Pipeline, Run
from tidemark_orchestrator.specs import pipeline_spec
from tidemark_orchestrator.validation import (
    Neighbour,
    catalog_issues,
    collision_issues,
    refuse_collisions,
    refuse_invalid,
    selection_issues,
)


async def check_streams(catalogs: Catalogs, connection_id: uuid.UUID, streams: Sequence[StreamSpec],
                        validate: bool) -> None:
    """422 for streams that cannot load as described; with ``validate``, checked against the
    connection's catalog as discovered now (503 when the source cannot be asked)."""
    refuse_invalid(selection_issues(streams))
    if validate:
        refuse_invalid(catalog_issues(streams, await catalogs.discover(connection_id)))


async def check_tables(session: AsyncSession, streams: Sequence[str], destination: DestinationSpec,
                       pipeline_id: uuid.UUID | None = None) -> None:
    """409 when a stream would write a table another stream already writes. Holds the table-claims
    lock until the caller's transaction ends, so check and write are one step."""
    await repository.lock_table_claims(session)
    default = DestinationSpec()
    others = [
        Neighbour(p.name, [str(s["name"]) for s in p.streams],
                  str(p.destination.get("kind", default.kind)),
                  str(p.destination.get("namespace", default.namespace)),
                  str(p.destination.get("table_prefix", default.table_prefix)))
        for p in await repository.list_pipelines(session) if p.id != pipeline_id
    ]
    refuse_collisions(collision_issues(streams, destination, others))


async def request_run(
    runtime: OrchestratorRuntime,
    session: AsyncSession,
    pipeline: Pipeline,
    trigger: Trigger = "manual",
    resync: Sequence[str] = (),
) -> Run:
    """Store a queued run and its ``run.requested`` event in the caller's transaction.

    At most one run per pipeline is active: a second request is refused (overlap policy `skip`).
    """
    known = {s["name"] for s in pipeline.streams}
    unknown = [name for name in resync if name not in known]
    if unknown:
        raise ConfigError(
            f"resync: {', '.join(unknown)} not among the pipeline's streams ({', '.join(sorted(known))})",
            field="resync",
        )
    if pipeline.status != "active":
        raise ConflictError(f"pipeline {pipeline.name!r} is {pipeline.status}; resume it first")
    current = await repository.active_run(session, pipeline.id)
    if current is not None:
        raise ConflictError(
            f"pipeline {pipeline.name!r} already has an active run", run_id=str(current.id)
        )
    run = await repository.add_run(session, pipeline, trigger)
    await runtime.emit(
        session,
        RunRequested(run_id=run.id, pipeline=pipeline_spec(pipeline), trigger=trigger, attempt=run.attempt,
                     resync=list(dict.fromkeys(resync))),
    )
    return run


async def pause(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline,
                now: datetime) -> list[Run]:
    """Pause: no run starts until resumed. Upcoming runs are withdrawn (returned); an active run
    goes on. Ticks missed from now on are caught up on resume by the pipeline's ``catchup``."""
    if pipeline.status == "paused":
        return []
    pipeline.status = "paused"
    pipeline.ticks_from = now
    return await scheduler.withdraw(runtime, session, pipeline, "pipeline paused")


async def resume(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline,
                 now: datetime) -> scheduler.Outcome:
    """Resume: ticks missed while paused follow ``catchup`` (``last``: at most one run), upcoming
    ticks are stored again; what happened is returned."""
    if pipeline.status == "active":
        return scheduler.Outcome()
    pipeline.status = "active"
    return await scheduler.sync_pipeline(runtime, session, pipeline, now)


async def change_schedule(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline,
                          schedule: dict[str, Any] | None, now: datetime) -> list[Run]:
    """A new schedule (or none) withdraws the old one's upcoming runs (returned); ticks of the new
    one count from now."""
    if schedule == pipeline.schedule:
        return []
    withdrawn = await scheduler.withdraw(runtime, session, pipeline,
                                         "schedule changed" if schedule else "schedule removed")
    pipeline.schedule = schedule
    pipeline.ticks_from = now
    return withdrawn


async def on_run_started(ctx: OrchestratorContext, event: RunStarted) -> None:
    session, envelope = ctx.session, ctx.envelope
    run = await repository.get_run(session, event.run_id)
    if run is not None and may_move(run.status, RunStatus.RUNNING):
        run.status = RunStatus.RUNNING
        run.started_at = envelope.occurred_at


async def on_run_finished(ctx: OrchestratorContext, event: RunFinished) -> None:
    """Record how the run ended; a repeated or late ``run.finished`` keeps the first ending."""
    session, envelope = ctx.session, ctx.envelope
    run = await repository.get_run(session, event.run_id)
    if run is None or not may_move(run.status, event.status):
        return
    run.status = event.status
    run.finished_at = envelope.occurred_at
    run.error = event.error.message if event.error else None
    # A tick waiting for this run may fire now: wake the scheduler once this is committed.
    wakeup = ctx.runtime.state.scheduler_wakeup
    sa.event.listen(session.sync_session, "after_commit", lambda _s: wakeup.set(), once=True)
