"""One run as ``GET /v1/runs/{id}`` and the detail page show it: timeline, attempts, error and hint."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark_jobs.hints import hint
from tidemark_jobs.models import RunTransition, RunView
from tidemark_jobs.schemas import AttemptOut, ErrorOut, RunDetail, RunOut, TransitionOut

MAX_ATTEMPTS = 100


async def run_detail(session: AsyncSession, run_id: uuid.UUID) -> RunDetail | None:
    view = await session.get(RunView, run_id)
    if view is None:
        return None
    steps = (await session.scalars(sa.select(RunTransition).where(RunTransition.run_id == run_id)
                                   .order_by(RunTransition.at, RunTransition.id))).all()
    retried_by = list((await session.scalars(sa.select(RunView.run_id).where(RunView.retry_of == run_id))).all())
    attempts = await _chain(session, view)
    error = None
    if view.error is not None:
        error = ErrorOut(message=view.error, kind=view.error_kind, stream=view.error_stream,
                         hint=hint(view.error, view.error_kind))
    duration = None
    if view.started_at is not None and view.finished_at is not None:
        duration = (view.finished_at - view.started_at).total_seconds()
    return RunDetail(
        **RunOut.model_validate(view).model_dump(),
        timeline=[TransitionOut.model_validate(s) for s in steps],
        attempts=[AttemptOut.model_validate(a) for a in attempts],
        retried_by=retried_by, error_detail=error, duration_seconds=duration,
        log_records=view.log_records, logs_dropped=view.logs_dropped,
    )


async def _chain(session: AsyncSession, view: RunView) -> list[RunView]:
    """Every attempt of the run's retry chain: up to the first attempt, then down through retries."""
    first = view
    for _ in range(MAX_ATTEMPTS):
        if first.retry_of is None:
            break
        parent = await session.get(RunView, first.retry_of)
        if parent is None:
            break
        first = parent
    chain = [first]
    for _ in range(MAX_ATTEMPTS):
        nxt = (await session.scalars(sa.select(RunView).where(RunView.retry_of == chain[-1].run_id)
                                     .order_by(RunView.attempt).limit(1))).first()
        if nxt is None:
            break
        chain.append(nxt)
    return chain if len(chain) > 1 else []
