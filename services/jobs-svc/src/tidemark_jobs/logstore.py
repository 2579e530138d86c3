"""The worker's log records of each run, as ``run.log`` events bring them: a bounded number per run.

A run keeps its newest ``limit`` records (the end of a log says why a run failed); older ones are
deleted and counted in ``logs_dropped``, together with those the worker itself dropped. Records are
numbered by the worker (``seq``), so a redelivered or repeated batch changes nothing and readers
page with ``?after=<seq>``.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.bus.inbox import insert_ignore
from tidemark.events import RunLogged
from tidemark_jobs.models import RunLog, RunView

MESSAGE_CHARS = 4000


async def keep(session: AsyncSession, view: RunView, event: RunLogged, limit: int) -> None:
    kept = 0
    for record in event.records:
        kept += await insert_ignore(session, RunLog.__table__, {  # type: ignore[arg-type]
            "run_id": view.run_id, "seq": record.seq, "at": record.at, "level": record.level[:16],
            "logger": record.logger[:128], "message": record.message[:MESSAGE_CHARS], "fields": record.fields,
        })
    view.log_records += kept
    view.logs_dropped += event.dropped
    excess = view.log_records - limit
    if excess > 0:
        # The excess-th oldest record: it and every record before it go.
        last_gone = (sa.select(RunLog.seq).where(RunLog.run_id == view.run_id)
                     .order_by(RunLog.seq).offset(excess - 1).limit(1).scalar_subquery())
        await session.execute(sa.delete(RunLog).where(RunLog.run_id == view.run_id, RunLog.seq <= last_gone))
        view.log_records -= excess
        view.logs_dropped += excess


async def read(session: AsyncSession, run_id: uuid.UUID, after: int | None, limit: int) -> list[RunLog]:
    query = sa.select(RunLog).where(RunLog.run_id == run_id)
    if after is not None:
        query = query.where(RunLog.seq > after)
    return list((await session.scalars(query.order_by(RunLog.seq).limit(limit))).all())
