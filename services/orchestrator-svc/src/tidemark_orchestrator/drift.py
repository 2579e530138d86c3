"""What orchestrator-svc does about schema drift: impact-svc decides by each pipeline's
``drift_policy`` and asks by event; a pause request pauses the pipeline as a user's pause would
(until someone resumes it)."""

from __future__ import annotations

import logging

from tidemark.events import PipelinePauseRequested
from tidemark.logs import fields
from tidemark_orchestrator import logic
from tidemark_orchestrator.deps import OrchestratorContext
from tidemark_orchestrator.models import Pipeline

log = logging.getLogger("tidemark.orchestrator")


async def on_pause_requested(ctx: OrchestratorContext, event: PipelinePauseRequested) -> None:
    pipeline = await ctx.session.get(Pipeline, event.pipeline_id)
    if pipeline is None:
        return  # deleted since
    if pipeline.status == "paused":
        return
    await logic.pause(ctx.runtime, ctx.session, pipeline, ctx.runtime.state.clock())
    log.info("pipeline paused on request: %s", event.reason,
             extra=fields(pipeline_id=str(pipeline.id), cause_event_id=str(event.cause_event_id)))
