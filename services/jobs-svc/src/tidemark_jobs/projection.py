"""Folding ``run.*`` events into the read model.

Events of one run share a Kafka key, but they come from different services, so
the projection moves a status only as :func:`tidemark.events.may_move` allows: a
late ``run.started`` after ``run.finished`` changes nothing, a repeated
``run.finished`` keeps the first ending, and ``run.requested`` arriving last only
fills in what it knows.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.events import Envelope, RunFinished, RunProgress, RunRequested, RunStarted, RunStatus, may_move
from tidemark_jobs.deps import JobsContext
from tidemark_jobs.models import RunView


async def _view(session: AsyncSession, envelope: Envelope, run_id: object, pipeline_id: object) -> RunView:
    view = await session.get(RunView, run_id)
    if view is None:
        view = RunView(run_id=run_id, pipeline_id=pipeline_id, status=RunStatus.QUEUED, attempt=1,
                       rows_read=0, rows_written=0, bytes_written=0, streams=[],
                       updated_at=envelope.occurred_at)
        session.add(view)
    return view


def _advance(view: RunView, status: RunStatus, envelope: Envelope) -> bool:
    if not may_move(view.status, status):
        return False
    view.status = status
    view.updated_at = envelope.occurred_at
    return True


async def on_requested(ctx: JobsContext, event: RunRequested) -> None:
    session, envelope = ctx.session, ctx.envelope
    view = await _view(session, envelope, event.run_id, event.pipeline.pipeline_id)
    view.pipeline_name = event.pipeline.name
    view.trigger = event.trigger
    view.attempt = event.attempt
    view.scheduled_for = event.scheduled_for
    view.requested_at = envelope.occurred_at


async def on_started(ctx: JobsContext, event: RunStarted) -> None:
    session, envelope = ctx.session, ctx.envelope
    view = await _view(session, envelope, event.run_id, event.pipeline_id)
    view.worker_ref = event.worker_ref
    if _advance(view, RunStatus.RUNNING, envelope):
        view.started_at = envelope.occurred_at


async def on_progress(ctx: JobsContext, event: RunProgress) -> None:
    session, envelope = ctx.session, ctx.envelope
    view = await _view(session, envelope, event.run_id, event.pipeline_id)
    if not RunStatus(view.status).terminal:
        view.rows_read = max(view.rows_read, event.rows_read)


async def on_finished(ctx: JobsContext, event: RunFinished) -> None:
    session, envelope = ctx.session, ctx.envelope
    view = await _view(session, envelope, event.run_id, event.pipeline_id)
    if not _advance(view, event.status, envelope):
        return
    view.finished_at = envelope.occurred_at
    view.started_at = view.started_at or envelope.occurred_at
    view.rows_read = sum(s.rows_read for s in event.streams)
    view.rows_written = event.rows_written
    view.bytes_written = sum(s.bytes_written for s in event.streams)
    view.streams = [s.model_dump(mode="json") for s in event.streams]
    view.error = event.error.message if event.error else None
