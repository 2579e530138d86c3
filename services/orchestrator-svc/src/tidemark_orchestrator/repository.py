"""Data access for pipelines and runs. Functions flush; the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only
from sqlalchemy.orm.attributes import set_committed_value

from tidemark.errors import ConflictError, NotFoundError
from tidemark.events import ACTIVE, RunStatus
from tidemark.ids import new_id
from tidemark_orchestrator.models import Pipeline, Run
from tidemark_orchestrator.schemas import PipelineCreate, PipelineUpdate
from tidemark_orchestrator.specs import stored, stored_worker

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
        worker=stored_worker(body.worker),
        overlap=body.overlap,
        retries=body.retries.model_dump(mode="json"),
        drift_policy=body.drift_policy.model_dump(exclude_none=True),
        maintenance=body.maintenance.model_dump(mode="json"),
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
    if "worker" in changes:
        changes["worker"] = stored_worker(body.worker)
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


async def lock_runs(session: AsyncSession, run_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Run]:
    """The runs that exist among ``run_ids``, read afresh with their rows locked until the transaction
    ends, in one order (no deadlock): a second delivery of the same events, on another replica,
    waits and then sees what this one did."""
    ids = sorted(set(run_ids))
    if not ids:
        return {}
    query = (sa.select(Run).where(Run.id.in_(ids)).order_by(Run.id).with_for_update()
             .execution_options(populate_existing=True))
    return {run.id: run for run in (await session.scalars(query)).all()}


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
    # Only what scheduling reads: the JSON columns a run's spec needs (streams, destination, ...)
    # cost a decode each, thousands per pass; admission loads them for the runs it starts.
    query = (sa.select(Pipeline)
             .options(load_only(Pipeline.name, Pipeline.connection_id, Pipeline.schedule, Pipeline.catchup,
                                Pipeline.ticks_from, Pipeline.status, Pipeline.next_check_at, Pipeline.overlap,
                                raiseload=True))
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
                 .values(status=RunStatus.QUEUED.value, requested_at=now, connection_id=connection, waiting_reason=None)
                 .returning(Run.id, Run.connection_id).execution_options(synchronize_session=False))
    await session.flush()  # a reason set on a waiting tick must not be written after this clears it
    moved = dict((await session.execute(statement)).all())
    for run in runs:
        if run.id in moved:
            set_committed_value(run, "status", RunStatus.QUEUED.value)
            set_committed_value(run, "requested_at", now)
            set_committed_value(run, "waiting_reason", None)
            set_committed_value(run, "connection_id", moved[run.id])
    return set(moved)


@dataclass(frozen=True)
class FiredTick:
    """A tick that became a queued run, with what its ``run.queued`` says."""

    id: uuid.UUID
    pipeline_id: uuid.UUID
    scheduled_for: datetime
    pipeline_name: str
    connection_id: uuid.UUID


async def lone_due_ticks(session: AsyncSession, now: datetime) -> list[tuple[uuid.UUID, uuid.UUID, datetime]]:
    """(run id, pipeline id, tick) of every due tick that is its pipeline's only one, earliest first."""
    due = (sa.select(Run.id, Run.pipeline_id, Run.scheduled_for,
                     sa.func.count().over(partition_by=Run.pipeline_id).label("due"))
           .where(Run.status == RunStatus.SCHEDULED.value, Run.scheduled_for <= now).subquery())
    query = (sa.select(due.c.id, due.c.pipeline_id, due.c.scheduled_for).where(due.c.due == 1)
             .order_by(due.c.scheduled_for, due.c.id))
    return [(row.id, row.pipeline_id, row.scheduled_for) for row in (await session.execute(query)).all()]


async def fire_lone_due_ticks(session: AsyncSession, ticks: Sequence[tuple[uuid.UUID, uuid.UUID, datetime]],
                              now: datetime, grace: timedelta) -> list[FiredTick]:
    """Queue the ``ticks`` (from :func:`lone_due_ticks`) that need no decision: their pipeline is
    active with no active run, and the tick is not too late for ``catchup: none``. The pipelines'
    rows are locked (rows another transaction holds are left for later), and a tick moves only while
    still ``scheduled``, so replicas firing at once queue each tick once. The rest is the
    per-pipeline pass's to decide (several due ticks, an active run to wait for, skip or cancel)."""
    if not ticks:
        return []
    # Two plain statements keyed by id lists: a join of the due ticks with pipelines was planned as a
    # nested loop (quadratic) whenever the statistics lagged behind a fresh burst of ticks.
    busy = sa.select(Run.pipeline_id).where(Run.status.in_([s.value for s in ACTIVE]))
    lockable = (sa.select(Pipeline.id, Pipeline.name, Pipeline.connection_id, Pipeline.catchup)
                .where(Pipeline.id.in_({pid for _, pid, _ in ticks}), Pipeline.status == "active",
                       Pipeline.schedule.is_not(None), Pipeline.id.not_in(busy))
                .with_for_update(skip_locked=True))
    pipelines = {row.id: row for row in (await session.execute(lockable)).all()}
    chosen = {run_id: (pipelines[pid], tick) for run_id, pid, tick in ticks
              if pid in pipelines and (pipelines[pid].catchup != "none" or now - tick <= grace)}
    if not chosen:
        return []
    # connection_id as the pipeline has it now: the run counts against that connection's limit.
    connection = sa.select(Pipeline.connection_id).where(Pipeline.id == Run.pipeline_id).scalar_subquery()
    moved = set((await session.execute(
        sa.update(Run).where(Run.id.in_(list(chosen)), Run.status == RunStatus.SCHEDULED.value)
        .values(status=RunStatus.QUEUED.value, requested_at=now, connection_id=connection).returning(Run.id)
        .execution_options(synchronize_session=False))).scalars().all())
    return [FiredTick(id=run_id, pipeline_id=pipeline.id, scheduled_for=tick, pipeline_name=pipeline.name,
                      connection_id=pipeline.connection_id)
            for run_id, (pipeline, tick) in chosen.items() if run_id in moved]


async def check_due_ticks_now(session: AsyncSession, pipeline_ids: Iterable[uuid.UUID], now: datetime) -> None:
    """Bring the pipelines' passes forward to now when a due tick of theirs waits (for a run that
    just ended, say), in one statement; a pipeline with none keeps its time, so ending runs by
    thousands does not make the scheduler look at each of their pipelines."""
    ids = sorted(set(pipeline_ids))
    if not ids:
        return
    due = sa.exists().where(Run.pipeline_id == Pipeline.id, Run.status == RunStatus.SCHEDULED.value,
                            Run.scheduled_for <= now)
    await session.execute(sa.update(Pipeline).where(Pipeline.id.in_(ids), due).values(next_check_at=now)
                          .execution_options(synchronize_session=False))


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
