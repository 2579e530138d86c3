"""The orchestrator's rules, as plain functions tests call directly."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.errors import ConfigError, ConflictError
from tidemark.events import (
    DestinationSpec,
    StreamSpec,
    Trigger,
)
from tidemark.events.contracts import MaintenanceRequest
from tidemark.lakehouse import naming
from tidemark_orchestrator import admission, changes, dependencies, repository, scheduler
from tidemark_orchestrator.cancel import cancel_run
from tidemark_orchestrator.catalogs import Catalogs
from tidemark_orchestrator.deps import OrchestratorRuntime
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
    maintenance: MaintenanceRequest | None = None,
) -> Run:
    """Queue a run (``run.queued``) in the caller's transaction and admit what may start now.

    Another run of the pipeline active follows its ``overlap``: ``queue`` lets the new run wait for
    it (409 when one already waits), ``skip`` refuses the new one (409), ``cancel_previous`` cancels
    the active runs first. A retry still in its backoff gives way to a manual run whatever the policy.
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
    now = runtime.state.clock()
    active = list(await repository.active_runs(session, pipeline.id))
    if trigger in ("manual", "maintenance"):
        backing_off = [r for r in active if r.trigger == "retry" and r.admitted_at is None]
        for run in backing_off:
            await cancel_run(runtime, session, pipeline.id, run.id, "superseded by a manual run", admit=False)
        active = [r for r in active if r not in backing_off]
    if active and pipeline.overlap == "cancel_previous":
        for run in active:
            await cancel_run(runtime, session, pipeline.id, run.id,
                             "superseded by a newer run (overlap: cancel_previous)", admit=False)
    elif active and (pipeline.overlap == "skip" or any(r.admitted_at is None for r in active)):
        current = active[0]
        why = "overlap: skip" if pipeline.overlap == "skip" else "a run already waits for it"
        raise ConflictError(f"pipeline {pipeline.name!r} already has an active run ({why})",
                            run_id=str(current.id), run_status=current.status)
    run = await admission.enqueue(runtime, session, pipeline, trigger, now, resync=resync, maintenance=maintenance)
    await dependencies.consume(session, pipeline.id)
    await admission.admit(runtime, session, now)
    return run


def check_maintenance_table(pipeline: Pipeline, table: str | None) -> None:
    """422 at ``table`` unless the pipeline writes it."""
    if table is None:
        return
    tables = pipeline_tables(pipeline)
    if table not in tables:
        raise ConfigError(f"table {table!r} is not one of the pipeline's tables ({', '.join(sorted(tables))})",
                          field="table")


def pipeline_tables(pipeline: Pipeline) -> list[str]:
    destination = pipeline_spec(pipeline).destination
    return [naming.table_identifier(destination.namespace, destination.table_prefix, s["name"])
            for s in pipeline.streams]


PAUSED = "pipeline paused"


async def pause(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline,
                now: datetime) -> tuple[list[Run], list[Run]]:
    """Pause: no run starts until resumed. Upcoming runs are withdrawn and queued runs still waiting
    for a slot are cancelled (both returned, in that order); a run already sent to the workers goes
    on. Ticks missed from now on are caught up on resume by the pipeline's ``catchup``."""
    if pipeline.status == "paused":
        return [], []
    pipeline.status = "paused"
    pipeline.ticks_from = now
    withdrawn = await scheduler.withdraw(runtime, session, pipeline, PAUSED)
    waiting = [r for r in await repository.active_runs(session, pipeline.id) if r.admitted_at is None]
    for run in waiting:
        await cancel_run(runtime, session, pipeline.id, run.id, PAUSED, admit=False)
    await changes.announce(runtime, session, pipeline, "paused")
    return withdrawn, waiting


async def resume(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline,
                 now: datetime) -> scheduler.Outcome:
    """Resume: ticks missed while paused follow ``catchup`` (``last``: at most one run), upcoming
    ticks are stored again; what happened is returned."""
    if pipeline.status == "active":
        return scheduler.Outcome()
    pipeline.status = "active"
    await changes.announce(runtime, session, pipeline, "resumed")
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


async def request_dependency_runs(runtime: OrchestratorRuntime, session: AsyncSession, run: Run,
                                  as_upstream: bool = True) -> list[Run]:
    """After ``run`` ended: its pipeline's edges record the ending (a success satisfies, anything
    else blocks), then each downstream whose every upstream is satisfied gets a ``dependency`` run,
    and so does the run's own pipeline if its upstreams were all satisfied while it ran.

    A downstream that is paused or has an active run keeps its satisfied edges: it is asked again
    when its own run ends (or, when paused, on the next upstream success after it is resumed).
    Exactly once: the edges remember the run they saw and the pipelines involved are row-locked, so
    a second delivery of this ending, from any replica, finds nothing left to do."""
    if not await dependencies.has_edges(session, run.pipeline_id):
        return []
    downstreams = await dependencies.downstream_ids(session, run.pipeline_id) if as_upstream else []
    await dependencies.lock_pipelines(session, [*downstreams, run.pipeline_id])
    if as_upstream:
        await dependencies.record_upstream_end(session, run.pipeline_id, run.id, run.status, run.finished_at)
    requested = []
    for pipeline_id in [*downstreams, run.pipeline_id]:
        if not await dependencies.all_upstreams_satisfied(session, pipeline_id):
            continue
        pipeline = await repository.get_pipeline(session, pipeline_id)
        if pipeline.status != "active" or await repository.active_runs(session, pipeline_id):
            continue
        requested.append(await request_run(runtime, session, pipeline, "dependency"))
    return requested
