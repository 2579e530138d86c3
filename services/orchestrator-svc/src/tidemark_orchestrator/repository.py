"""Data access for pipelines and runs. Functions flush; the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
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
        schedule=body.schedule.model_dump(mode="json") if body.schedule else None,
        catchup=body.catchup,
        status="active",
        timeout_seconds=body.timeout_seconds,
        drift_policy=body.drift_policy.model_dump(exclude_none=True),
    )
    session.add(pipeline)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise ConflictError(f"a pipeline named {body.name!r} already exists", field="name") from exc
    return pipeline


async def get_pipeline(session: AsyncSession, pipeline_id: uuid.UUID, lock: bool = False) -> Pipeline:
    """The pipeline; with ``lock``, its row is locked until the transaction ends (PostgreSQL), which
    orders a change against the scheduler's pass over the same pipeline."""
    pipeline = await session.get(Pipeline, pipeline_id, with_for_update=lock or None, populate_existing=lock)
    if pipeline is None:
        raise NotFoundError(f"pipeline {pipeline_id} does not exist")
    return pipeline


async def list_pipelines(session: AsyncSession) -> Sequence[Pipeline]:
    return (await session.scalars(sa.select(Pipeline).order_by(Pipeline.name))).all()


async def update_pipeline(session: AsyncSession, pipeline: Pipeline, body: PipelineUpdate) -> Pipeline:
    """Apply the body's fields except ``status`` and ``schedule``, which have rules of their own
    (``logic.pause``, ``logic.resume``, ``logic.change_schedule``), and ``upstreams``, which are edges in
    their own table (``dependencies.set_upstreams``)."""
    changes = body.model_dump(exclude_unset=True, exclude={"status", "schedule", "upstreams"}, mode="json")
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


# --- schedule ticks ------------------------------------------------------------------------------------


async def lock_scheduled_pipeline(session: AsyncSession, pipeline_id: uuid.UUID) -> Pipeline | None:
    """The pipeline with its row locked, or None when another transaction (a replica's scheduler, a
    change) holds it: the scheduler then leaves it for its next pass instead of waiting."""
    query = sa.select(Pipeline).where(Pipeline.id == pipeline_id).with_for_update(skip_locked=True)
    return (await session.scalars(query.execution_options(populate_existing=True))).first()


async def scheduled_pipeline_ids(session: AsyncSession) -> Sequence[uuid.UUID]:
    query = sa.select(Pipeline.id).where(Pipeline.status == "active", Pipeline.schedule.is_not(None))
    return (await session.scalars(query.order_by(Pipeline.id))).all()


async def stray_ticks(session: AsyncSession) -> Sequence[uuid.UUID]:
    """Pipelines holding upcoming runs they should not: paused, or with no schedule."""
    query = (sa.select(Run.pipeline_id).join(Pipeline, Pipeline.id == Run.pipeline_id)
             .where(Run.status == RunStatus.SCHEDULED,
                    sa.or_(Pipeline.status != "active", Pipeline.schedule.is_(None)))
             .distinct())
    return (await session.scalars(query)).all()


async def scheduled_runs(session: AsyncSession, pipeline_id: uuid.UUID,
                         due_by: datetime | None = None) -> Sequence[Run]:
    """The pipeline's upcoming runs, earliest first; with ``due_by``, only those due by then."""
    query = sa.select(Run).where(Run.pipeline_id == pipeline_id, Run.status == RunStatus.SCHEDULED)
    if due_by is not None:
        query = query.where(Run.scheduled_for <= due_by)
    return (await session.scalars(query.order_by(Run.scheduled_for))).all()


async def latest_tick(session: AsyncSession, pipeline_id: uuid.UUID) -> datetime | None:
    """The latest tick the pipeline has a run for, whatever became of it."""
    query = sa.select(sa.func.max(Run.scheduled_for)).where(Run.pipeline_id == pipeline_id)
    found: datetime | None = (await session.execute(query)).scalar_one_or_none()
    return found


async def add_tick(session: AsyncSession, pipeline_id: uuid.UUID, scheduled_for: datetime,
                   now: datetime) -> Run | None:
    """Store an upcoming run for the tick unless the pipeline has one for it already (then None):
    the unique ``(pipeline_id, scheduled_for)`` makes a tick one run, however many replicas add it."""
    dialect = (await session.connection()).dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    run_id = new_id()
    statement = (
        insert(Run)
        .values(id=run_id, pipeline_id=pipeline_id, trigger="schedule", status=RunStatus.SCHEDULED.value,
                attempt=1, scheduled_for=scheduled_for, requested_at=now)
        .on_conflict_do_nothing(index_elements=["pipeline_id", "scheduled_for"])
        .returning(Run.id)
    )
    if (await session.execute(statement)).scalar_one_or_none() is None:
        return None
    return await session.get(Run, run_id)


async def move_scheduled(session: AsyncSession, run: Run, status: RunStatus, at: datetime,
                         error: str | None = None) -> bool:
    """Move an upcoming run on, only if it is still ``scheduled`` (True when this call moved it): two
    replicas firing the same tick both try, one wins."""
    values: dict[str, object] = {"status": status.value}
    if status is RunStatus.QUEUED:
        values["requested_at"] = at
    else:
        values.update(finished_at=at, error=error)
    statement = (sa.update(Run).where(Run.id == run.id, Run.status == RunStatus.SCHEDULED.value)
                 .values(**values).execution_options(synchronize_session=False))
    result = cast("CursorResult[Any]", await session.execute(statement))
    moved = result.rowcount == 1
    if moved:
        await session.refresh(run)
    return moved


async def delete_run(session: AsyncSession, run: Run) -> None:
    await session.delete(run)
    await session.flush()
