"""Data access for pipelines and runs. Functions flush; the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.errors import ConflictError, NotFoundError
from tidemark.events import ACTIVE, RunStatus, Trigger
from tidemark.ids import new_id
from tidemark_orchestrator.models import Pipeline, Run
from tidemark_orchestrator.schemas import PipelineCreate, PipelineUpdate
from tidemark_orchestrator.specs import stored

# Any constant works: it names "who writes which table" for pg_advisory_xact_lock.
TABLE_CLAIMS_LOCK = 0x7469646D61726B  # "tidmark"


async def lock_table_claims(session: AsyncSession) -> None:
    """Serialise pipeline creates and changes until the transaction ends, so two of them cannot
    both find a table free and both claim it. SQLite serialises writers by itself."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": TABLE_CLAIMS_LOCK})


async def add_pipeline(session: AsyncSession, body: PipelineCreate) -> Pipeline:
    pipeline = Pipeline(
        id=new_id(),
        name=body.name,
        connection_id=body.connection_id,
        streams=[stored(s) for s in body.streams],
        destination=stored(body.destination),
        schedule=body.schedule,
        status="active",
        timeout_seconds=body.timeout_seconds,
    )
    session.add(pipeline)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise ConflictError(f"a pipeline named {body.name!r} already exists", field="name") from exc
    return pipeline


async def get_pipeline(session: AsyncSession, pipeline_id: uuid.UUID) -> Pipeline:
    pipeline = await session.get(Pipeline, pipeline_id)
    if pipeline is None:
        raise NotFoundError(f"pipeline {pipeline_id} does not exist")
    return pipeline


async def list_pipelines(session: AsyncSession) -> Sequence[Pipeline]:
    return (await session.scalars(sa.select(Pipeline).order_by(Pipeline.name))).all()


async def update_pipeline(session: AsyncSession, pipeline: Pipeline, body: PipelineUpdate) -> Pipeline:
    # Upstreams are edges in their own table (see ``dependencies.set_upstreams``).
    changes = body.model_dump(exclude_unset=True, exclude={"upstreams"}, mode="json")
    for key, value in changes.items():
        setattr(pipeline, key, value)
    await session.flush()
    return pipeline


async def delete_pipeline(session: AsyncSession, pipeline: Pipeline) -> None:
    await session.delete(pipeline)
    await session.flush()


async def active_run(session: AsyncSession, pipeline_id: uuid.UUID) -> Run | None:
    query = sa.select(Run).where(Run.pipeline_id == pipeline_id, Run.status.in_([s.value for s in ACTIVE])).limit(1)
    return (await session.scalars(query)).first()


async def add_run(session: AsyncSession, pipeline: Pipeline, trigger: Trigger) -> Run:
    run = Run(id=new_id(), pipeline_id=pipeline.id, trigger=trigger, status=RunStatus.QUEUED, attempt=1)
    session.add(run)
    await session.flush()
    return run


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> Run | None:
    return await session.get(Run, run_id)


async def list_runs(session: AsyncSession, pipeline_id: uuid.UUID, limit: int) -> Sequence[Run]:
    query = sa.select(Run).where(Run.pipeline_id == pipeline_id).order_by(Run.requested_at.desc()).limit(limit)
    return (await session.scalars(query)).all()
