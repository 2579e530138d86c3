"""/v1/pipelines: create, list, change, delete pipelines; trigger runs (the command side of runs).

The read API for runs is jobs-svc's ``/v1/runs``; ``GET /v1/pipelines/{id}/runs`` shows only the
orchestrator's own record of the runs it requested (see :data:`COMMAND_SIDE`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from tidemark.api.openapi import problem_responses
from tidemark.events.contracts import MaintenanceRequest
from tidemark_orchestrator import cancel, changes, dependencies, logic, repository, scheduler
from tidemark_orchestrator.deps import Runtime
from tidemark_orchestrator.schemas import (
    CancelOut,
    MaintenanceRun,
    PauseOut,
    PipelineCreate,
    PipelineGraph,
    PipelineOut,
    PipelineUpdate,
    ResumeOut,
    RunOut,
    TriggerRun,
)
from tidemark_orchestrator.specs import to_wire_destination, to_wire_streams

CHECKS = """

**Checks.** The streams are checked against the connection's catalog, discovered now: each stream,
its `columns`, `primary_key` columns and partition columns must exist, and `cursor_field` must be
one of the stream's cursor candidates (an integer, decimal, date or timestamp column). A 422 lists
every problem in `errors[]` with its exact field (`connection_id`, `streams.0.name`,
`streams.0.columns.1`, `streams.0.primary_key.0`, `streams.0.cursor_field`,
`streams.0.partition.0.column`). When the source cannot be reached the answer is a 503; pass
`?validate=false` to save the pipeline without these checks (its first run reports what is wrong).
Checks that need no source apply either way: `columns` and `primary_key` list each column once,
and key, cursor and partition columns are among `columns` when it is given.

Table names: a 409 when a stream would write the same table as another stream of this pipeline,
or of another pipeline writing the same destination kind and namespace (`errors[].field` is the
stream's `streams.N.name`). This check needs no source and always applies.

Upstreams: each of `upstreams` is a pipeline id or name (a 422 at `upstreams.N` when none
matches); a pipeline that would wait for itself, directly or through others, is a 422 at
`upstreams` naming the cycle (`a → b → c → a`).
"""


Validate = Annotated[bool, Query(
    description="`false` saves the pipeline without checking its streams against the source "
                "(for a source that cannot be reached now); table collisions are refused all the same.",
)]
router = APIRouter(prefix="/v1/pipelines", tags=["pipelines"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(409, 503),
             description="Create a pipeline." + CHECKS)
async def create_pipeline(body: PipelineCreate, rt: Runtime, validate: Validate = True) -> PipelineOut:
    await logic.check_streams(rt.state.catalogs, body.connection_id, to_wire_streams(body.streams), validate)
    async with rt.state.claims, rt.transaction() as session:
        await logic.check_tables(session, [s.name for s in body.streams], to_wire_destination(body.destination))
        pipeline = await repository.add_pipeline(session, body)
        await dependencies.set_upstreams(session, pipeline, body.upstreams)
        # Its upcoming runs exist from the answer on (the scheduler tops them up later).
        await changes.announce(rt, session, pipeline, "created")
        await scheduler.sync_pipeline(rt, session, pipeline, rt.state.clock())
        [out] = await dependencies.describe(session, [pipeline])
        return out


@router.get("")
async def list_pipelines(rt: Runtime) -> list[PipelineOut]:
    async with rt.sessions() as session:
        return await dependencies.describe(session, await repository.list_pipelines(session))


@router.get("/{pipeline_id}")
async def get_pipeline(pipeline_id: uuid.UUID, rt: Runtime) -> PipelineOut:
    async with rt.sessions() as session:
        [out] = await dependencies.describe(session, [await repository.get_pipeline(session, pipeline_id)])
        return out


@router.get("/{pipeline_id}/graph", summary="The pipelines a pipeline waits for and those waiting for it")
async def pipeline_graph(pipeline_id: uuid.UUID, rt: Runtime) -> PipelineGraph:
    """Upstreams and downstreams to any depth, as two trees with each pipeline's id, name and depth."""
    async with rt.sessions() as session:
        return await dependencies.graph(session, await repository.get_pipeline(session, pipeline_id))


SCHEDULE_CHANGES = """

**Schedule.** A changed `schedule` (or `null`) withdraws the upcoming runs of the old one
(`run.unscheduled`) and stores the new one's; its ticks count from now. `status` `paused` or
`active` does what `POST .../pause` and `.../resume` do.
"""


@router.patch("/{pipeline_id}", responses=problem_responses(409, 503),
              description="Change a pipeline; fields left out keep their value. New `streams` are checked "
                          "as on create; a new `streams` or `destination` is checked for table collisions."
                          + SCHEDULE_CHANGES + CHECKS)
async def update_pipeline(
    pipeline_id: uuid.UUID, body: PipelineUpdate, rt: Runtime, validate: Validate = True
) -> PipelineOut:
    if body.streams is not None:
        # Discovery can take a while: no transaction is open during it.
        async with rt.sessions() as session:
            connection_id = (await repository.get_pipeline(session, pipeline_id)).connection_id
        await logic.check_streams(rt.state.catalogs, connection_id, to_wire_streams(body.streams), validate)
    async with rt.state.claims, rt.transaction() as session:
        pipeline = await repository.get_pipeline(session, pipeline_id, lock=True)
        if body.streams is not None or body.destination is not None:
            streams = [s.name for s in body.streams] if body.streams else [str(s["name"]) for s in pipeline.streams]
            destination = to_wire_destination(body.destination or pipeline.destination)
            await logic.check_tables(session, streams, destination, pipeline.id)
        if body.upstreams is not None:
            await repository.lock_table_claims(session)  # see set_upstreams: one change of edges at a time
            await dependencies.set_upstreams(session, pipeline, body.upstreams)
        now = rt.state.clock()
        await repository.update_pipeline(session, pipeline, body)
        if "schedule" in body.model_fields_set:
            schedule = body.schedule.model_dump(mode="json") if body.schedule else None
            await logic.change_schedule(rt, session, pipeline, schedule, now)
        if body.model_fields_set - {"status"}:
            await session.flush()
            await changes.announce(rt, session, pipeline, "updated")
        if body.status == "paused":
            await logic.pause(rt, session, pipeline, now)
        elif body.status == "active" and pipeline.status == "paused":
            await logic.resume(rt, session, pipeline, now)
        else:
            await scheduler.sync_pipeline(rt, session, pipeline, now)
        await session.flush()
        [out] = await dependencies.describe(session, [pipeline])
        return out


@router.delete("/{pipeline_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(409))
async def delete_pipeline(pipeline_id: uuid.UUID, rt: Runtime) -> Response:
    """Delete a pipeline; its upcoming runs are withdrawn (`run.unscheduled`). 409 naming its
    downstreams when other pipelines wait for it."""
    async with rt.state.claims, rt.transaction() as session:
        await repository.lock_table_claims(session)
        pipeline = await repository.get_pipeline(session, pipeline_id, lock=True)
        await dependencies.refuse_delete_with_downstreams(session, pipeline)
        await scheduler.withdraw(rt, session, pipeline, "pipeline deleted")
        await changes.announce(rt, session, pipeline, "deleted")
        await repository.delete_pipeline(session, pipeline)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{pipeline_id}/pause")
async def pause_pipeline(pipeline_id: uuid.UUID, rt: Runtime) -> PauseOut:
    """Pause a pipeline: neither its schedule, its upstreams nor a manual trigger starts a run until
    it is resumed. Its upcoming (`scheduled`) runs are withdrawn and listed in `unscheduled`; queued
    runs still waiting for a slot (or a retry's backoff) end `cancelled` and are listed in
    `cancelled`; a run already sent to the workers is not stopped and is shown as `active_run`.
    Pausing a paused pipeline changes nothing."""
    async with rt.transaction() as session:
        pipeline = await repository.get_pipeline(session, pipeline_id, lock=True)
        withdrawn, cancelled = await logic.pause(rt, session, pipeline, rt.state.clock())
        active = await repository.active_run(session, pipeline.id)
        await session.flush()
        [out] = await dependencies.describe(session, [pipeline])
        return PauseOut(pipeline=out,
                        unscheduled=[RunOut.model_validate(r) for r in withdrawn],
                        cancelled=[RunOut.model_validate(r) for r in cancelled],
                        active_run=RunOut.model_validate(active) if active else None)


@router.post("/{pipeline_id}/resume")
async def resume_pipeline(pipeline_id: uuid.UUID, rt: Runtime) -> ResumeOut:
    """Resume a paused pipeline. Ticks its schedule had while it was paused follow its `catchup`:
    `last` requests one run for the latest of them (never more), `all` each of them in turn (the 100
    most recent; one at a time, as one run per pipeline is active), `none` none. Upcoming runs are
    stored again. Resuming an active pipeline changes nothing."""
    async with rt.transaction() as session:
        pipeline = await repository.get_pipeline(session, pipeline_id, lock=True)
        now = rt.state.clock()
        outcome = await logic.resume(rt, session, pipeline, now)
        scheduled = await repository.scheduled_runs(session, pipeline.id)
        await session.flush()
        [out] = await dependencies.describe(session, [pipeline])
        return ResumeOut(pipeline=out,
                         queued=[RunOut.model_validate(await repository.get_run(session, t.id))
                                 for t in outcome.queued],
                         waiting=[RunOut.model_validate(r) for r in scheduled
                                  if r.scheduled_for is not None and r.scheduled_for <= now],
                         upcoming=sum(1 for r in scheduled if r.scheduled_for is not None and r.scheduled_for > now))


COMMAND_SIDE = (
    "The orchestrator's own record of the runs it requested: what its overlap policy (one active run "
    "per pipeline) acts on, updated from `run.started` and `run.finished`. It is not the read API for "
    "runs: users and other platforms read runs, with their streams, rows and warnings, from jobs-svc's "
    "`GET /v1/runs?pipeline_id=` (the same `run_id`)."
)


@router.post("/{pipeline_id}/runs", status_code=status.HTTP_202_ACCEPTED, responses=problem_responses(409))
async def trigger_run(pipeline_id: uuid.UUID, rt: Runtime, body: TriggerRun | None = None) -> RunOut:
    """Queue a manual run, optionally resyncing some streams. The answer's `run_id` is the run's id
    in every run view (jobs-svc's `GET /v1/runs/{run_id}` follows it to the end).

    409 when the pipeline is paused or already has an active run."""
    resync = body.resync if body is not None else []
    async with rt.transaction() as session:
        pipeline = await repository.get_pipeline(session, pipeline_id, lock=True)
        run = await logic.request_run(rt, session, pipeline, "manual", resync)
        return RunOut.model_validate(run)


@router.post("/{pipeline_id}/maintenance", status_code=status.HTTP_202_ACCEPTED, responses=problem_responses(409, 422))
async def trigger_maintenance(pipeline_id: uuid.UUID, rt: Runtime, body: MaintenanceRun | None = None) -> RunOut:
    """Queue a maintenance run (trigger `maintenance`) of the pipeline's tables: compaction, snapshot
    expiry and orphan cleanup, with the pipeline's maintenance policy. It is a run like any other: it
    never runs beside an ingestion run of the pipeline, and jobs-svc shows what it did in its stats.

    409 when the pipeline is paused or already has an active run; 422 (`table`) for a table the
    pipeline does not write. ingest-svc's `POST /v1/tables/{table}/maintenance` answers at once."""
    request = body or MaintenanceRun()
    async with rt.transaction() as session:
        pipeline = await repository.get_pipeline(session, pipeline_id, lock=True)
        logic.check_maintenance_table(pipeline, request.table)
        run = await logic.request_run(rt, session, pipeline, "maintenance", maintenance=MaintenanceRequest(
            action=request.action, table=request.table, dry_run=request.dry_run))
        return RunOut.model_validate(run)


@router.get("/{pipeline_id}/runs", summary="The orchestrator's record of a pipeline's runs (command side)",
            description=COMMAND_SIDE)
async def list_pipeline_runs(
    pipeline_id: uuid.UUID, rt: Runtime, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[RunOut]:
    async with rt.sessions() as session:
        await repository.get_pipeline(session, pipeline_id)
        return [RunOut.model_validate(r) for r in await repository.list_runs(session, pipeline_id, limit)]


@router.post("/{pipeline_id}/runs/{run_id}/cancel", responses={
    **problem_responses(404, 409),
    202: {"model": CancelOut, "description": "The run is starting or running: its worker is being stopped "
                                             "(`outcome` `cancel_requested`)."},
})
async def cancel_run(pipeline_id: uuid.UUID, run_id: uuid.UUID, rt: Runtime, response: Response) -> CancelOut:
    """Cancel a run. A queued run is cancelled at once: 200, `outcome` `cancelled`. A starting or
    running run is asked to stop: 202, `outcome` `cancel_requested`; its worker is stopped (SIGTERM,
    then SIGKILL after ingest-svc's `stop_grace_seconds`), nothing it was loading is committed, and the
    run ends `cancelled` with the error "cancelled by user" (jobs-svc's `GET /v1/runs/{run_id}`).
    A run that finishes before its worker stops keeps its own ending.

    404 for an unknown run or a run of another pipeline; 409 for a run that already ended."""
    async with rt.transaction() as session:
        answer = await cancel.cancel_run(rt, session, pipeline_id, run_id)
    if answer.outcome == "cancel_requested":
        response.status_code = status.HTTP_202_ACCEPTED
    return answer
