"""The orchestrator's rules, as plain functions tests call directly."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.db import utcnow
from tidemark.errors import ConfigError, ConflictError, NotFoundError
from tidemark.events import (
    DestinationSpec,
    RunCancelRequested,
    RunError,
    RunFinished,
    RunRequested,
    RunStarted,
    RunStatus,
    StreamSpec,
    Trigger,
    may_move,
)
from tidemark_orchestrator import dependencies, drift, repository, scheduler
from tidemark_orchestrator.catalogs import Catalogs
from tidemark_orchestrator.deps import OrchestratorContext, OrchestratorRuntime
from tidemark_orchestrator.models import Pipeline, Run
from tidemark_orchestrator.schemas import CancelOut
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
    # Row-locked so two requests (a manual one and a dependency one, or two replicas) cannot both
    # find the pipeline idle.
    await dependencies.lock_pipelines(session, [pipeline.id])
    current = await repository.active_run(session, pipeline.id)
    if current is not None:
        raise ConflictError(
            f"pipeline {pipeline.name!r} already has an active run", run_id=str(current.id)
        )
    run = await repository.add_run(session, pipeline, trigger)
    if await drift.fail_if_drifted(runtime, session, pipeline, run):
        return run
    await dependencies.consume(session, pipeline.id)
    await runtime.emit(
        session,
        RunRequested(run_id=run.id, pipeline=pipeline_spec(pipeline), trigger=trigger, attempt=run.attempt,
                     resync=list(dict.fromkeys(resync)), timeout_seconds=pipeline.timeout_seconds),
    )
    return run


CANCELLED_BY_USER = "cancelled by user"


async def cancel_run(runtime: OrchestratorRuntime, session: AsyncSession, pipeline_id: uuid.UUID,
                     run_id: uuid.UUID, reason: str = CANCELLED_BY_USER) -> CancelOut:
    """Cancel a run of ``pipeline_id`` in the caller's transaction.

    A queued run ends ``cancelled`` at once with a ``run.finished`` (ingest-svc, seeing it, never
    launches the run, or stops a worker it launched meanwhile). A starting or running run gets a
    ``run.cancel_requested``: ingest-svc stops its worker and ends the run. 404 for an unknown run or
    one of another pipeline; 409 for a run that already ended."""
    await repository.get_pipeline(session, pipeline_id)
    run = await repository.get_run(session, run_id)
    if run is None or run.pipeline_id != pipeline_id:
        raise NotFoundError(f"run {run_id} of pipeline {pipeline_id} does not exist")
    if RunStatus(run.status).terminal:
        raise ConflictError(f"run {run_id} already ended: {run.status}", run_id=str(run_id), run_status=run.status)
    if run.status == RunStatus.QUEUED and may_move(run.status, RunStatus.CANCELLED):
        run.status = RunStatus.CANCELLED
        run.finished_at = utcnow()
        run.error = reason
        await runtime.emit(session, RunFinished(run_id=run.id, pipeline_id=pipeline_id, status=RunStatus.CANCELLED,
                                                error=RunError(message=reason, kind="terminal")))
        return CancelOut(run_id=run.id, pipeline_id=pipeline_id, outcome="cancelled", status=RunStatus.CANCELLED)
    await runtime.emit(session, RunCancelRequested(run_id=run.id, pipeline_id=pipeline_id, reason=reason))
    return CancelOut(run_id=run.id, pipeline_id=pipeline_id, outcome="cancel_requested",
                     status=RunStatus(run.status))


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
    """Record how the run ended (a repeated or late ``run.finished`` keeps the first ending), then
    request the dependency runs it completes."""
    session, envelope = ctx.session, ctx.envelope
    run = await repository.get_run(session, event.run_id)
    if run is None or not may_move(run.status, event.status):
        return
    run.status = event.status
    run.finished_at = envelope.occurred_at
    run.error = event.error.message if event.error else None
    await request_dependency_runs(ctx.runtime, session, run)

    # A tick waiting for this run may fire now: wake the scheduler once this is committed.
    wakeup = ctx.runtime.state.scheduler_wakeup
    sa.event.listen(session.sync_session, "after_commit", lambda _s: wakeup.set(), once=True)


async def request_dependency_runs(runtime: OrchestratorRuntime, session: AsyncSession, run: Run) -> list[Run]:
    """After ``run`` ended: its pipeline's edges record the ending (a success satisfies, anything
    else blocks), then each downstream whose every upstream is satisfied gets a ``dependency`` run,
    and so does the run's own pipeline if its upstreams were all satisfied while it ran.

    A downstream that is paused or has an active run keeps its satisfied edges: it is asked again
    when its own run ends (or, when paused, on the next upstream success after it is resumed).
    Exactly once: the edges remember the run they saw and the pipelines involved are row-locked, so
    a second delivery of this ending, from any replica, finds nothing left to do."""
    downstreams = await dependencies.downstream_ids(session, run.pipeline_id)
    await dependencies.lock_pipelines(session, [*downstreams, run.pipeline_id])
    await dependencies.record_upstream_end(session, run.pipeline_id, run.id, run.status, run.finished_at)
    requested = []
    for pipeline_id in [*downstreams, run.pipeline_id]:
        if not await dependencies.all_upstreams_satisfied(session, pipeline_id):
            continue
        pipeline = await repository.get_pipeline(session, pipeline_id)
        if pipeline.status != "active" or await repository.active_run(session, pipeline_id) is not None:
            continue
        requested.append(await request_run(runtime, session, pipeline, "dependency"))
    return requested
