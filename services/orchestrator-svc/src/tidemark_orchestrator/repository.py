"""Data access for pipelines and runs. Functions flush; the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from tidemark.errors import ConflictError, NotFoundError
from tidemark.events import ACTIVE, RunStatus
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
        overlap=body.overlap,
        retries=body.retries.model_dump(mode="json"),
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


async def pipelines_by_id(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Pipeline]:
    """The pipelines, from the session when it holds them, else in one query."""
    found: dict[uuid.UUID, Pipeline] = {}
    missing = []
    for pipeline_id in ids:
        held = session.identity_map.get(session.sync_session.identity_key(Pipeline, pipeline_id))
        if isinstance(held, Pipeline):
            found[pipeline_id] = held
        else:
            missing.append(pipeline_id)
    if missing:
        found.update((p.id, p) for p in (await session.scalars(sa.select(Pipeline).where(Pipeline.id.in_(missing)))))
    return found


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


async def active_runs(session: AsyncSession, pipeline_id: uuid.UUID) -> list[Run]:
    """The pipeline's queued, starting and running runs, the one holding a slot first."""
    return (await active_runs_of(session, [pipeline_id]))[pipeline_id]


async def active_run(session: AsyncSession, pipeline_id: uuid.UUID) -> Run | None:
    found = await active_runs(session, pipeline_id)
    return found[0] if found else None


async def any_waiting(session: AsyncSession) -> bool:
    """Whether any queued run waits to be admitted (one indexed probe)."""
    query = sa.select(Run.id).where(Run.status == RunStatus.QUEUED.value, Run.admitted_at.is_(None)).limit(1)
    return (await session.scalars(query)).first() is not None


async def get_run(session: AsyncSession, run_id: uuid.UUID, lock: bool = False) -> Run | None:
    return await session.get(Run, run_id, with_for_update=lock or None, populate_existing=lock)


async def list_runs(session: AsyncSession, pipeline_id: uuid.UUID, limit: int) -> Sequence[Run]:
    query = sa.select(Run).where(Run.pipeline_id == pipeline_id).order_by(Run.requested_at.desc()).limit(limit)
    return (await session.scalars(query)).all()


# --- schedule ticks ------------------------------------------------------------------------------------


async def lock_scheduled_pipeline(session: AsyncSession, pipeline_id: uuid.UUID) -> Pipeline | None:
    """The pipeline with its row locked, or None when another transaction (a replica's scheduler, a
    change) holds it: the scheduler then leaves it for its next pass instead of waiting."""
    query = sa.select(Pipeline).where(Pipeline.id == pipeline_id).with_for_update(skip_locked=True)
    return (await session.scalars(query.execution_options(populate_existing=True))).first()


async def lock_due_pipelines(session: AsyncSession, now: datetime, limit: int) -> list[Pipeline]:
    """Up to ``limit`` scheduled pipelines whose ``next_check_at`` has come, their rows locked;
    rows another transaction holds (a replica's pass, a change) are left for later."""
    query = (sa.select(Pipeline)
             .where(Pipeline.status == "active", Pipeline.schedule.is_not(None),
                    sa.or_(Pipeline.next_check_at.is_(None), Pipeline.next_check_at <= now))
             .order_by(Pipeline.next_check_at.is_not(None), Pipeline.next_check_at, Pipeline.id)
             .limit(limit).with_for_update(skip_locked=True))
    return list((await session.scalars(query.execution_options(populate_existing=True))).all())


def _by_pipeline(ids: Sequence[uuid.UUID], runs: Sequence[Run]) -> dict[uuid.UUID, list[Run]]:
    grouped: dict[uuid.UUID, list[Run]] = {pid: [] for pid in ids}
    for run in runs:
        grouped[run.pipeline_id].append(run)
    return grouped


async def scheduled_runs_of(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Run]]:
    """Each pipeline's upcoming runs, earliest first."""
    query = (sa.select(Run).where(Run.pipeline_id.in_(ids), Run.status == RunStatus.SCHEDULED.value)
             .order_by(Run.scheduled_for))
    return _by_pipeline(ids, (await session.scalars(query)).all())


async def active_runs_of(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Run]]:
    """Each pipeline's queued, starting and running runs, the one holding a slot first."""
    query = (sa.select(Run).where(Run.pipeline_id.in_(ids), Run.status.in_([s.value for s in ACTIVE]))
             .order_by(Run.admitted_at.is_(None), Run.requested_at))
    return _by_pipeline(ids, (await session.scalars(query)).all())


async def latest_ticks(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    """The latest tick each pipeline has a run for, whatever became of it."""
    query = (sa.select(Run.pipeline_id, sa.func.max(Run.scheduled_for))
             .where(Run.pipeline_id.in_(ids), Run.scheduled_for.is_not(None)).group_by(Run.pipeline_id))
    return {pid: tick for pid, tick in (await session.execute(query)).all() if tick is not None}


async def add_ticks(session: AsyncSession, ticks: Sequence[tuple[uuid.UUID, datetime]], now: datetime) -> list[Run]:
    """Store an upcoming run for each (pipeline, tick) unless the pipeline has one for it already:
    the unique ``(pipeline_id, scheduled_for)`` makes a tick one run, however many replicas add it.
    Returns the runs this call stored."""
    if not ticks:
        return []
    dialect = (await session.connection()).dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [{"id": new_id(), "pipeline_id": pid, "trigger": "schedule", "status": RunStatus.SCHEDULED.value,
             "attempt": 1, "scheduled_for": tick, "requested_at": now} for pid, tick in ticks]
    # One compiled statement sent in batches (SQLAlchemy's insertmanyvalues): a pass stores thousands.
    statement = insert(Run).on_conflict_do_nothing(index_elements=["pipeline_id", "scheduled_for"]).returning(Run)
    return list((await session.scalars(statement, rows)).all())


async def fire_ticks(session: AsyncSession, runs: Sequence[Run], now: datetime) -> set[uuid.UUID]:
    """Move upcoming runs to ``queued`` in one statement, only those still ``scheduled`` (their ids
    are returned): two replicas firing the same tick both try, one wins."""
    if not runs:
        return set()
    connection = sa.select(Pipeline.connection_id).where(Pipeline.id == Run.pipeline_id).scalar_subquery()
    statement = (sa.update(Run).where(Run.id.in_([r.id for r in runs]), Run.status == RunStatus.SCHEDULED.value)
                 .values(status=RunStatus.QUEUED.value, requested_at=now, connection_id=connection)
                 .returning(Run.id, Run.connection_id).execution_options(synchronize_session=False))
    moved = dict((await session.execute(statement)).all())
    for run in runs:
        if run.id in moved:
            set_committed_value(run, "status", RunStatus.QUEUED.value)
            set_committed_value(run, "requested_at", now)
            set_committed_value(run, "connection_id", moved[run.id])
    return set(moved)


async def stray_ticks(session: AsyncSession) -> Sequence[uuid.UUID]:
    """Pipelines holding upcoming runs they should not: paused, or with no schedule."""
    query = (sa.select(Run.pipeline_id).join(Pipeline, Pipeline.id == Run.pipeline_id)
             .where(Run.status == RunStatus.SCHEDULED,
                    sa.or_(Pipeline.status != "active", Pipeline.schedule.is_(None)))
             .distinct())
    return (await session.scalars(query)).all()


async def scheduled_runs(session: AsyncSession, pipeline_id: uuid.UUID) -> list[Run]:
    """The pipeline's upcoming runs, earliest first."""
    return (await scheduled_runs_of(session, [pipeline_id]))[pipeline_id]


async def skip_scheduled(session: AsyncSession, run: Run, at: datetime, reason: str) -> bool:
    """End an upcoming run ``cancelled`` with ``reason``, only if it is still ``scheduled`` (True when
    this call ended it): a replica firing the same tick at once makes the other's move a no-op."""
    statement = (sa.update(Run).where(Run.id == run.id, Run.status == RunStatus.SCHEDULED.value)
                 .values(status=RunStatus.CANCELLED.value, finished_at=at, error=reason)
                 .execution_options(synchronize_session=False))
    result = cast("CursorResult[Any]", await session.execute(statement))
    moved = result.rowcount == 1
    if moved:
        await session.refresh(run)
    return moved


async def delete_run(session: AsyncSession, run: Run) -> None:
    await session.delete(run)
    await session.flush()
