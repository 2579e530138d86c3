"""Folding ``run.*`` events into the read model.

Events of one run share a Kafka key, but they come from different services, so
the projection moves a status only as :func:`tidemark.events.may_move` allows: a
late ``run.started`` after ``run.finished`` changes nothing, a repeated
``run.finished`` keeps the first ending, and ``run.requested`` arriving last only
fills in what it knows.

Upcoming runs: ``run.scheduled`` makes a ``scheduled`` row (a schedule tick not yet due);
``run.queued`` (or, from producers older than it, ``run.requested``) moves it to ``queued``;
``run.unscheduled`` (the tick was withdrawn before it was due) removes the row, as the run never
existed. ``run.requested`` means the run was admitted to start: it stays ``queued`` until its
worker starts, as ingest-svc may still wait for a free launcher.

Every change of status, and every new reason a queued run waits, is a row of ``run_transitions``
(the run's timeline); ``run_totals`` follows each status change.

A renamed pipeline (``pipeline.changed`` on the pipelines topic) renames its runs, past ones too, so
the list finds a pipeline's whole history by its current name.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.events import (
    Envelope,
    PipelineChanged,
    RunCancelRequested,
    RunFinished,
    RunLogged,
    RunProgress,
    RunQueued,
    RunRequested,
    RunScheduled,
    RunStarted,
    RunStatus,
    RunUnscheduled,
    RunWaiting,
    may_move,
)
from tidemark_jobs import logstore, metrics
from tidemark_jobs.deps import JobsContext
from tidemark_jobs.models import PipelineHealth, RunTotal, RunTransition, RunView


async def _count(session: AsyncSession, status: str, trigger: str | None, delta: int) -> None:
    await session.execute(sa.update(RunTotal).where(RunTotal.status == status, RunTotal.trigger == (trigger or ""))
                          .values(runs=RunTotal.runs + delta))


async def _set_trigger(session: AsyncSession, view: RunView, trigger: str) -> None:
    if view.trigger != trigger:
        await _count(session, view.status, view.trigger, -1)
        await _count(session, view.status, trigger, 1)
        view.trigger = trigger


async def _view(session: AsyncSession, envelope: Envelope, run_id: uuid.UUID, pipeline_id: uuid.UUID,
                status: RunStatus = RunStatus.QUEUED) -> tuple[RunView, bool]:
    """The run's row, and whether this event made it."""
    view = await session.get(RunView, run_id)
    if view is not None:
        return view, False
    view = RunView(run_id=run_id, pipeline_id=pipeline_id, status=status, attempt=1,
                   rows_read=0, rows_written=0, bytes_written=0, streams=[], log_records=0, logs_dropped=0,
                   updated_at=envelope.occurred_at, list_order=0)
    if status != RunStatus.SCHEDULED:
        # Its first event (possibly a late-ordered one) is the earliest we know it existed.
        view.queued_at = envelope.occurred_at
        view.list_order = list_order(view)
    session.add(view)
    await _count(session, status, None, 1)
    return view, True


async def _advance(session: AsyncSession, view: RunView, status: RunStatus, envelope: Envelope) -> bool:
    if not may_move(view.status, status):
        return False
    await _count(session, view.status, view.trigger, -1)
    await _count(session, status, view.trigger, 1)
    view.status = status
    view.updated_at = envelope.occurred_at
    return True


def list_order(view: RunView) -> int:
    if view.queued_at is not None:
        return micros(view.queued_at)
    return -micros(view.scheduled_for) if view.scheduled_for is not None else 0


def micros(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000 + at.microsecond


def _note(session: AsyncSession, view: RunView, envelope: Envelope, reason: str | None) -> None:
    session.add(RunTransition(run_id=view.run_id, status=view.status, at=envelope.occurred_at,
                              event=envelope.type, reason=reason))


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


async def on_scheduled(ctx: JobsContext, event: RunScheduled) -> None:
    session, envelope = ctx.session, ctx.envelope
    view, made = await _view(session, envelope, event.run_id, event.pipeline_id, RunStatus.SCHEDULED)
    view.pipeline_name = view.pipeline_name or event.pipeline_name
    await _set_trigger(session, view, view.trigger or event.trigger)
    view.scheduled_for = event.scheduled_for
    view.list_order = list_order(view)
    if made:
        _note(session, view, envelope, f"scheduled for {_when(event.scheduled_for)}")


async def on_unscheduled(ctx: JobsContext, event: RunUnscheduled) -> None:
    session = ctx.session
    view = await session.get(RunView, event.run_id)
    # Only a tick that is still upcoming is withdrawn; one that was queued stays a run.
    if view is not None and view.status == RunStatus.SCHEDULED:
        await _count(session, view.status, view.trigger, -1)
        await session.execute(sa.delete(RunTransition).where(RunTransition.run_id == event.run_id))
        await session.delete(view)


def _queued_reason(trigger: str, attempt: int, retry_of: uuid.UUID | None, reason: str | None) -> str:
    if reason:
        return reason
    if retry_of is not None:
        return f"retry (attempt {attempt}) of run {retry_of}"
    return f"{trigger} run queued"


async def on_queued(ctx: JobsContext, event: RunQueued) -> None:
    session, envelope = ctx.session, ctx.envelope
    view, made = await _view(session, envelope, event.run_id, event.pipeline_id)
    moved = await _advance(session, view, RunStatus.QUEUED, envelope)
    view.pipeline_name = event.pipeline_name
    view.connection_id = event.connection_id
    await _set_trigger(session, view, event.trigger)
    view.attempt = event.attempt
    view.retry_of = event.retry_of
    view.scheduled_for = event.scheduled_for or view.scheduled_for
    view.queued_at = view.queued_at or envelope.occurred_at
    view.list_order = list_order(view)
    if view.status == RunStatus.QUEUED and view.requested_at is None:
        view.not_before = event.not_before
        view.wait_reason = event.reason
    if made or moved:
        _note(session, view, envelope, _queued_reason(event.trigger, event.attempt, event.retry_of, event.reason))


async def on_waiting(ctx: JobsContext, event: RunWaiting) -> None:
    session, envelope = ctx.session, ctx.envelope
    view, _ = await _view(session, envelope, event.run_id, event.pipeline_id)
    # A reason that arrives after the run was admitted (or ended) is no longer why it waits.
    if view.status == RunStatus.QUEUED and view.requested_at is None and view.wait_reason != event.reason:
        view.wait_reason = event.reason
        _note(session, view, envelope, event.reason)


async def on_requested(ctx: JobsContext, event: RunRequested) -> None:
    session, envelope = ctx.session, ctx.envelope
    view, made = await _view(session, envelope, event.run_id, event.pipeline.pipeline_id)
    moved = await _advance(session, view, RunStatus.QUEUED, envelope)  # an upcoming run is now queued
    view.pipeline_name = event.pipeline.name
    view.connection_id = event.pipeline.connection_id
    await _set_trigger(session, view, event.trigger)
    view.attempt = event.attempt
    view.retry_of = event.retry_of
    view.scheduled_for = event.scheduled_for or view.scheduled_for
    view.queued_at = view.queued_at or envelope.occurred_at
    view.list_order = list_order(view)
    view.requested_at = envelope.occurred_at
    view.wait_reason = view.not_before = None
    if made or moved:  # no run.queued came first (an older orchestrator): this is its queueing too
        _note(session, view, envelope, _queued_reason(event.trigger, event.attempt, event.retry_of, None))
    if view.status == RunStatus.QUEUED:
        _note(session, view, envelope, "admitted to start; waiting for a worker")


async def on_started(ctx: JobsContext, event: RunStarted) -> None:
    session, envelope = ctx.session, ctx.envelope
    view, _ = await _view(session, envelope, event.run_id, event.pipeline_id)
    view.worker_ref = event.worker_ref
    if await _advance(session, view, RunStatus.RUNNING, envelope):
        view.started_at = envelope.occurred_at
        view.wait_reason = None
        _note(session, view, envelope, f"worker {event.worker_ref} started ({event.launcher} launcher)")


async def on_progress(ctx: JobsContext, event: RunProgress) -> None:
    session, envelope = ctx.session, ctx.envelope
    view, _ = await _view(session, envelope, event.run_id, event.pipeline_id)
    if not RunStatus(view.status).terminal:
        view.rows_read = max(view.rows_read, event.rows_read)


async def on_cancel_requested(ctx: JobsContext, event: RunCancelRequested) -> None:
    session, envelope = ctx.session, ctx.envelope
    view = await session.get(RunView, event.run_id)
    if view is not None and not RunStatus(view.status).terminal:
        _note(session, view, envelope, f"cancel requested: {event.reason}")


async def on_finished(ctx: JobsContext, event: RunFinished) -> None:
    session, envelope = ctx.session, ctx.envelope
    view, _ = await _view(session, envelope, event.run_id, event.pipeline_id)
    if not await _advance(session, view, event.status, envelope):
        return
    view.finished_at = envelope.occurred_at
    view.started_at = view.started_at or envelope.occurred_at
    view.wait_reason = view.not_before = None
    view.rows_read = sum(s.rows_read for s in event.streams)
    view.rows_written = event.rows_written
    view.bytes_written = sum(s.bytes_written for s in event.streams)
    view.streams = [s.model_dump(mode="json") for s in event.streams]
    error = event.error
    view.error = error.message if error else None
    view.error_kind = error.kind if error else None
    view.error_stream = error.stream if error else None
    reason = error.message if error else f"{event.rows_written} rows written in {len(event.streams)} stream(s)"
    _note(session, view, envelope, reason)
    await _health(session, view)
    metrics.observe_finished(view)


async def _health(session: AsyncSession, view: RunView) -> None:
    assert view.finished_at is not None
    health = await session.get(PipelineHealth, view.pipeline_id)
    if health is None:
        health = PipelineHealth(pipeline_id=view.pipeline_id, first_finished_at=view.finished_at,
                                last_finished_at=view.finished_at, last_status=view.status)
        session.add(health)
    elif view.finished_at >= health.last_finished_at:
        health.last_finished_at, health.last_status = view.finished_at, view.status
    if view.status == RunStatus.SUCCEEDED and (health.last_success_at is None
                                               or view.finished_at > health.last_success_at):
        health.last_success_at = view.finished_at


async def on_logged(ctx: JobsContext, event: RunLogged) -> None:
    session, envelope = ctx.session, ctx.envelope
    view, _ = await _view(session, envelope, event.run_id, event.pipeline_id)
    await logstore.keep(session, view, event, ctx.runtime.settings.logs_per_run)


async def on_pipeline_changed(ctx: JobsContext, event: PipelineChanged) -> None:
    if event.change == "deleted":
        return  # the runs keep the name the pipeline last had
    name = event.pipeline.name
    await ctx.session.execute(sa.update(RunView).where(RunView.pipeline_id == event.pipeline_id,
                                                       RunView.pipeline_name.is_distinct_from(name))
                              .values(pipeline_name=name))
