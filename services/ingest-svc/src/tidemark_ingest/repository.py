"""Data access for worker runs. Functions flush; the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.bus.inbox import insert_ignore
from tidemark.db import utcnow
from tidemark.errors import NotFoundError
from tidemark.events import ACTIVE, RunRequested, RunStatus
from tidemark_ingest.models import WorkerRun


async def add_worker_run(session: AsyncSession, event: RunRequested, launcher: str) -> bool:
    """Record a requested run; False when it was recorded before (a redelivered or repeated request)."""
    return await insert_ignore(session, cast(sa.Table, WorkerRun.__table__), {
        "run_id": event.run_id,
        "pipeline_id": event.pipeline.pipeline_id,
        "spec": event.model_dump(mode="json"),
        "status": RunStatus.QUEUED.value,
        "launcher": launcher,
        "attempt": event.attempt,
        "requested_at": utcnow(),
        "stats": [],
    })


async def get_worker_run(session: AsyncSession, run_id: uuid.UUID, lock: bool = False) -> WorkerRun | None:
    """The run; with ``lock``, its row stays locked until the transaction ends (PostgreSQL), so two
    status changes (a worker starting, a cancel) cannot both read the old status and overwrite each other."""
    return await session.get(WorkerRun, run_id, with_for_update=lock or None)


async def require_worker_run(session: AsyncSession, run_id: uuid.UUID) -> WorkerRun:
    run = await session.get(WorkerRun, run_id)
    if run is None:
        raise NotFoundError(f"worker run {run_id} does not exist")
    return run


async def list_worker_runs(session: AsyncSession, status: RunStatus | None, limit: int) -> Sequence[WorkerRun]:
    query = sa.select(WorkerRun).order_by(WorkerRun.requested_at.desc()).limit(limit)
    if status is not None:
        query = query.where(WorkerRun.status == status.value)
    return (await session.scalars(query)).all()


async def queued_run_ids(session: AsyncSession, limit: int = 50) -> Sequence[uuid.UUID]:
    query = (sa.select(WorkerRun.run_id).where(WorkerRun.status == RunStatus.QUEUED.value)
             .order_by(WorkerRun.requested_at).limit(limit))
    return (await session.scalars(query)).all()


async def claim_for_launch(session: AsyncSession, run_id: uuid.UUID) -> bool:
    """Move a queued run to starting; True for exactly one caller, however many replicas try."""
    result = await session.execute(
        sa.update(WorkerRun)
        .where(WorkerRun.run_id == run_id, WorkerRun.status == RunStatus.QUEUED.value)
        .values(status=RunStatus.STARTING.value)
    )
    return bool(getattr(result, "rowcount", 0))


async def set_worker_ref(session: AsyncSession, run_id: uuid.UUID, worker_ref: str) -> None:
    await session.execute(
        sa.update(WorkerRun)
        .where(WorkerRun.run_id == run_id, WorkerRun.worker_ref.is_(None))
        .values(worker_ref=worker_ref)
    )


async def touch_heartbeat(session: AsyncSession, run_id: uuid.UUID) -> bool:
    """Record that the worker is alive; False when the run is no longer running (someone failed it)."""
    result = await session.execute(
        sa.update(WorkerRun)
        .where(WorkerRun.run_id == run_id, WorkerRun.status == RunStatus.RUNNING.value)
        .values(heartbeat_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


async def running_runs(session: AsyncSession) -> Sequence[WorkerRun]:
    query = sa.select(WorkerRun).where(WorkerRun.status == RunStatus.RUNNING.value)
    return (await session.scalars(query)).all()


async def silent_runs(session: AsyncSession, cutoff: datetime) -> Sequence[WorkerRun]:
    """Active runs that showed no sign of life (heartbeat, start or request) since ``cutoff``."""
    last_sign = sa.func.coalesce(WorkerRun.heartbeat_at, WorkerRun.started_at, WorkerRun.requested_at)
    query = sa.select(WorkerRun).where(WorkerRun.status.in_([s.value for s in ACTIVE]), last_sign < cutoff)
    return (await session.scalars(query)).all()


async def worker_runs_by_id(session: AsyncSession, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, WorkerRun]:
    if not run_ids:
        return {}
    query = sa.select(WorkerRun).where(WorkerRun.run_id.in_(set(run_ids)))
    return {run.run_id: run for run in (await session.scalars(query)).all()}
