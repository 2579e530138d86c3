"""What orchestrator-svc does about schema drift. impact-svc decides by each pipeline's
``drift_policy`` and asks by event; this module carries the request out:

- ``pipeline.pause_requested``: paused as a user's pause would (until someone resumes it);
- ``fail``: the pipeline's next run fails at once with the drift as its reason (then runs go on);
- ``ignore``: a stream that loaded every column keeps loading the ones it had;
- ``add_stream``: the new table becomes a stream of the pipeline (full refresh);
- ``create_pipeline``: a new pipeline loads the new table with this one's settings.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.events import PipelineDriftActionRequested, PipelinePauseRequested
from tidemark.ids import new_id
from tidemark.logs import fields
from tidemark_orchestrator import changes, logic, scheduler
from tidemark_orchestrator.deps import OrchestratorContext, OrchestratorRuntime
from tidemark_orchestrator.models import Pipeline
from tidemark_orchestrator.schemas import MAX_STREAMS
from tidemark_orchestrator.specs import StreamSpec, stored

log = logging.getLogger("tidemark.orchestrator")


async def on_pause_requested(ctx: OrchestratorContext, event: PipelinePauseRequested) -> None:
    pipeline = await ctx.session.get(Pipeline, event.pipeline_id)
    if pipeline is None or pipeline.status == "paused":
        return  # deleted since, or paused already
    await logic.pause(ctx.runtime, ctx.session, pipeline, ctx.runtime.state.clock())
    log.info("pipeline paused on request: %s", event.reason,
             extra=fields(pipeline_id=str(pipeline.id), cause_event_id=str(event.cause_event_id)))


async def on_action_requested(ctx: OrchestratorContext, event: PipelineDriftActionRequested) -> None:
    session = ctx.session
    pipeline = await session.get(Pipeline, event.pipeline_id)
    if pipeline is None:
        return
    if event.action == "fail":
        pipeline.drift_failure = event.reason
    elif event.action == "ignore" and event.stream and event.columns:
        pipeline.streams = [s | {"columns": event.columns} if s["name"] == event.stream and s.get("columns") is None
                            else s for s in pipeline.streams]
    elif event.action == "add_stream" and event.stream:
        if len(pipeline.streams) >= MAX_STREAMS:
            log.warning("drift action add_stream not carried out: the pipeline has the most streams a pipeline "
                        "may have", extra=fields(pipeline_id=str(pipeline.id), stream=event.stream,
                                                 max_streams=MAX_STREAMS))
            return
        if event.stream not in {s["name"] for s in pipeline.streams}:
            pipeline.streams = [*pipeline.streams, stored(StreamSpec(name=event.stream))]
    elif event.action == "create_pipeline" and event.stream:
        await _create_pipeline(ctx.runtime, session, pipeline, event.stream)
    if event.action in ("ignore", "add_stream"):
        await session.flush()
        await changes.announce(ctx.runtime, session, pipeline, "updated")
    log.info("drift action %s carried out: %s", event.action, event.reason,
             extra=fields(pipeline_id=str(pipeline.id), drift_id=str(event.drift_id)))


async def _create_pipeline(runtime: OrchestratorRuntime, session: AsyncSession, source: Pipeline,
                           stream: str) -> None:
    name = f"{source.name}-{stream.rpartition('.')[2]}"[:128]
    if (await session.scalars(sa.select(Pipeline.id).where(Pipeline.name == name))).first() is not None:
        return  # created for an earlier drift
    created = Pipeline(id=new_id(), name=name, connection_id=source.connection_id,
                       streams=[stored(StreamSpec(name=stream))], destination=dict(source.destination),
                       schedule=source.schedule, catchup=source.catchup, status="active",
                       timeout_seconds=source.timeout_seconds, worker=source.worker,
                       drift_policy=source.drift_policy, overlap=source.overlap, retries=source.retries,
                       maintenance=source.maintenance)
    session.add(created)
    await session.flush()
    await changes.announce(runtime, session, created, "created")
    await scheduler.sync_pipeline(runtime, session, created, runtime.state.clock())
