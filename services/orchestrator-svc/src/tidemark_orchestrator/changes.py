"""``pipeline.changed``: every change of a pipeline, with its whole definition after it, so other
services (impact analysis, the Jobs page) keep projections of pipelines without asking this one."""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.events import PipelineChanged, RetryPolicy, ScheduleInfo
from tidemark_orchestrator import retries
from tidemark_orchestrator.deps import OrchestratorRuntime
from tidemark_orchestrator.models import Dependency, Pipeline
from tidemark_orchestrator.specs import pipeline_spec

Change = Literal["created", "updated", "paused", "resumed", "deleted"]


async def announce(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline, change: Change) -> None:
    """Emit ``pipeline.changed`` in the caller's transaction (for ``deleted``: before the row goes)."""
    upstreams = (await session.scalars(
        sa.select(Dependency.upstream_id).where(Dependency.downstream_id == pipeline.id)
        .order_by(Dependency.upstream_id))).all()
    schedule = pipeline.schedule
    await runtime.emit(session, PipelineChanged(
        pipeline_id=pipeline.id, change=change, pipeline=pipeline_spec(pipeline),
        status="paused" if pipeline.status == "paused" else "active",
        schedule=ScheduleInfo(cron=str(schedule.get("cron", "")), timezone=str(schedule.get("timezone", "UTC")))
        if schedule else None,
        upstreams=list(upstreams), catchup=pipeline.catchup, overlap=pipeline.overlap,
        retries=RetryPolicy.model_validate(retries.policy(pipeline).model_dump()),
        timeout_seconds=pipeline.timeout_seconds, drift_policy=dict(pipeline.drift_policy or {})))
