"""Folding ``run.*`` events into the read model.

Events of one run share a Kafka key, but they come from different services, so
the projection moves a status only as :func:`tidemark.events.may_move` allows: a
late ``run.started`` after ``run.finished`` changes nothing, a repeated
``run.finished`` keeps the first ending, and ``run.requested`` arriving last only
fills in what it knows.

Upcoming runs: ``run.scheduled`` makes a ``scheduled`` row (a schedule tick not yet due);
``run.requested`` moves it to ``queued``; ``run.unscheduled`` (the tick was withdrawn before it was
due) removes the row, as the run never existed.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.events import (
    Envelope,
    RunFinished,
    RunProgress,
    RunRequested,
    RunScheduled,
    RunStarted,
    RunStatus,
    RunUnscheduled,
    may_move,
)
from tidemark_jobs.deps import JobsContext
from tidemark_jobs.models import RunView


async def _view(session: AsyncSession, envelope: Envelope, run_id: object, pipeline_id: object,
                status: RunStatus = RunStatus.QUEUED) -> RunView:
    view = await session.get(RunView, run_id)
    if view is None:
        view = RunView(run_id=run_id, pipeline_id=pipeline_id, status=status, attempt=1,
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


async def on_scheduled(ctx: JobsContext, event: RunScheduled) -> None:
    session, envelope = ctx.session, ctx.envelope
    view = await _view(session, envelope, event.run_id, event.pipeline_id, RunStatus.SCHEDULED)
    view.pipeline_name = view.pipeline_name or event.pipeline_name
    view.trigger = event.trigger
    view.scheduled_for = event.scheduled_for


async def on_unscheduled(ctx: JobsContext, event: RunUnscheduled) -> None:
    view = await ctx.session.get(RunView, event.run_id)
    # Only a tick that is still upcoming is withdrawn; one that was requested stays a run.
    if view is not None and view.status == RunStatus.SCHEDULED:
        await ctx.session.delete(view)


async def on_requested(ctx: JobsContext, event: RunRequested) -> None:
    session, envelope = ctx.session, ctx.envelope
    view = await _view(session, envelope, event.run_id, event.pipeline.pipeline_id)
    _advance(view, RunStatus.QUEUED, envelope)  # an upcoming (scheduled) run is now queued
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
