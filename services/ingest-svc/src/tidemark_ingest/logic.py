"""ingest-svc's rules, as plain functions tests call directly.

A requested run is recorded ``queued``; the launch loop claims it (``starting``) and
starts a worker; the worker marks it ``running``, heartbeats, and finishes it. Two
safety nets fail runs the worker could not finish: the launcher's exit watch (the
process ended, the run is not terminal) and the heartbeat reaper (nothing heard from
the worker for ``heartbeat_timeout_seconds``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.aio import wait_for_event
from tidemark.db import utcnow
from tidemark.errors import TidemarkError
from tidemark.events import (
    ErrorKind,
    RunCancelRequested,
    RunError,
    RunFinished,
    RunRequested,
    RunStatus,
    StreamStats,
    may_move,
)
from tidemark.logs import fields, log_context
from tidemark_ingest import repository
from tidemark_ingest.deps import IngestContext, IngestRuntime
from tidemark_ingest.launchers import ExitCallback, Launcher, worker_spec
from tidemark_ingest.metrics import (
    BYTES_WRITTEN,
    MAINTENANCE,
    MAINTENANCE_RECLAIMED,
    MAINTENANCE_REWRITTEN,
    ROWS_WRITTEN,
    TABLE_DATA_FILES,
    TABLE_DELETE_FILES,
    WORKER_LAUNCHES,
    WORKER_RUN_DURATION,
    WORKER_RUNS,
)
from tidemark_ingest.models import WorkerRun
from tidemark_ingest.stopping import CANCELLED_BY_USER, ending, timeout_reason

log = logging.getLogger(__name__)

LaunchWakeup = asyncio.Event


async def on_run_requested(ctx: IngestContext, event: RunRequested) -> None:
    """Record the run; the launch loop starts it once committed."""
    session, wakeup = ctx.session, ctx.runtime.state.wakeup
    with log_context(run_id=str(event.run_id)):
        if not await repository.add_worker_run(session, event, ctx.runtime.settings.launcher):
            log.info("run already recorded; not launching it again")
            return
        log.info("run queued", extra=fields(pipeline=event.pipeline.name))
        # Wake the launch loop only once the row is visible to it.
        sa.event.listen(session.sync_session, "after_commit", lambda _s: wakeup.set(), once=True)


async def on_run_finished(ctx: IngestContext, event: RunFinished) -> None:
    """Count finished runs. Consuming the event (not the exit) counts runs however they ended.

    A ``cancelled`` ending for a run still active here comes from the orchestrator, which cancelled
    the run while it saw it queued: the run is not launched, or its worker is stopped."""
    session, envelope = ctx.session, ctx.envelope
    run = await repository.get_worker_run(session, event.run_id, lock=True)
    if run is None:
        return
    if event.status is RunStatus.CANCELLED and may_move(run.status, RunStatus.CANCELLED):
        reason = event.error.message if event.error else CANCELLED_BY_USER
        # The orchestrator already told everyone the run ended: a queued one ends here quietly.
        await request_stop(ctx, run, reason, announce=False)
    outcome = event.status.value
    WORKER_RUNS.labels(outcome).inc()
    ROWS_WRITTEN.inc(event.rows_written)
    BYTES_WRITTEN.inc(sum(s.bytes_written for s in event.streams))
    observe_tables(event, maintenance=bool((run.spec or {}).get("maintenance")))
    if run.started_at is not None:
        ended = run.finished_at or envelope.occurred_at
        WORKER_RUN_DURATION.labels(outcome).observe(max(0.0, (ended - run.started_at).total_seconds()))


def observe_tables(event: RunFinished, maintenance: bool) -> None:
    """Tables' file counts after an ingestion run, and what a maintenance run did, without table labels."""
    for stream in event.streams:
        if stream.data_files is not None:
            TABLE_DATA_FILES.observe(stream.data_files)
        if stream.delete_files is not None:
            TABLE_DELETE_FILES.observe(stream.delete_files)
        if maintenance:
            MAINTENANCE.labels("run", stream.status).inc()
        done = stream.maintenance
        if done is not None and not done.dry_run:
            MAINTENANCE_RECLAIMED.inc(done.bytes_reclaimed)
            MAINTENANCE_REWRITTEN.inc(done.bytes_rewritten)


async def on_run_cancel_requested(ctx: IngestContext, event: RunCancelRequested) -> None:
    """Stop a run: a queued one ends ``cancelled`` at once; a starting or running one's worker is
    stopped once this is committed, and its exit ends the run ``cancelled``. A run that already
    ended keeps its ending."""
    with log_context(run_id=str(event.run_id)):
        run = await repository.get_worker_run(ctx.session, event.run_id, lock=True)
        if run is None or not may_move(run.status, RunStatus.CANCELLED):
            log.info("cancel requested for a run that is not active here; nothing to stop",
                     extra=fields(status=run.status if run else None))
            return
        await request_stop(ctx, run, event.reason, announce=True)


async def request_stop(ctx: IngestContext, run: WorkerRun, reason: str, announce: bool) -> None:
    """Record why ``run`` is stopped, in the event's transaction. A queued run was never launched
    (the launch loop claims queued runs only): it ends now, with a ``run.finished`` when ``announce``.
    Otherwise its worker is stopped after the commit, so the reason is there when it exits."""
    runtime = ctx.runtime
    run.cancel_reason = run.cancel_reason or reason
    if run.status == RunStatus.QUEUED.value:
        await end_stopped(runtime, ctx.session, run, run.cancel_reason, announce)
        return
    run_id, worker_ref = run.run_id, run.worker_ref
    log.info("stopping the run's worker", extra=fields(run_id=str(run_id), reason=reason))
    sa.event.listen(ctx.session.sync_session, "after_commit",
                    lambda _session: _stop_in_background(runtime, run_id, worker_ref), once=True)


def _stop_in_background(runtime: IngestRuntime, run_id: uuid.UUID, worker_ref: str | None) -> None:
    stops = runtime.state.stops
    task = asyncio.get_running_loop().create_task(stop_worker(runtime, run_id, worker_ref), name=f"stop-{run_id}")
    stops.add(task)
    task.add_done_callback(stops.discard)


async def stop_worker(runtime: IngestRuntime, run_id: uuid.UUID, worker_ref: str | None) -> None:
    """Stop the run's worker (SIGTERM, then SIGKILL after ``stop_grace_seconds``); when none was
    running (it was about to start, or ended), end the run here if it is still active."""
    with log_context(run_id=str(run_id)):
        try:
            await runtime.state.launcher.stop(run_id, worker_ref, runtime.settings.stop_grace_seconds)
            # The worker's exit ended the run already, or no worker ran: then it ends now, and a
            # worker launched meanwhile finds it ended and does nothing.
            await end_if_live(runtime, run_id, "worker stopped")
        except Exception:
            log.exception("could not stop the run's worker")


async def end_stopped(runtime: IngestRuntime, session: AsyncSession, run: WorkerRun, reason: str,
                      announce: bool = True) -> bool:
    """End a run stopped for ``reason``: ``cancelled``, or ``failed`` for a timeout (and emit
    ``run.finished`` when ``announce``); False when it already ended."""
    status, error = ending(reason)
    if not may_move(run.status, status):
        return False
    run.status = status.value
    run.finished_at = utcnow()
    run.error = reason
    if announce:
        await runtime.emit(session, RunFinished(
            run_id=run.run_id,
            pipeline_id=run.pipeline_id,
            status=status,
            streams=[StreamStats.model_validate(s) for s in run.stats or []],
            error=error,
        ))
    log.info("run stopped", extra=fields(run_id=str(run.run_id), status=status.value, reason=reason))
    return True


async def end_unfinished(runtime: IngestRuntime, session: AsyncSession, run: WorkerRun, message: str,
                         kind: ErrorKind = "terminal") -> bool:
    """End a run its worker did not finish: as its stop's reason says when it was stopped on purpose
    (cancelled, or failed by a timeout), else failed with ``message``. False when the run already ended."""
    if run.cancel_reason is not None:
        return await end_stopped(runtime, session, run, run.cancel_reason)
    return await fail_run(runtime, session, run, message, kind)


async def fail_run(runtime: IngestRuntime, session: AsyncSession, run: WorkerRun, message: str,
                   kind: ErrorKind = "terminal") -> bool:
    """Mark ``run`` failed and emit ``run.finished`` in the caller's transaction; False (and nothing
    changed) when the run already ended."""
    if not may_move(run.status, RunStatus.FAILED):
        return False
    run.status = RunStatus.FAILED.value
    run.finished_at = utcnow()
    run.error = message
    await runtime.emit(session, RunFinished(
        run_id=run.run_id,
        pipeline_id=run.pipeline_id,
        status=RunStatus.FAILED,
        streams=[StreamStats.model_validate(s) for s in run.stats or []],
        error=RunError(message=message, kind=kind),
    ))
    log.warning("run failed", extra=fields(run_id=str(run.run_id), error=message))
    return True


async def end_if_live(runtime: IngestRuntime, run_id: uuid.UUID, message: str,
                      kind: ErrorKind = "terminal") -> bool:
    """:func:`end_unfinished` for a run still active: True when this ended it."""
    async with runtime.transaction() as session:
        run = await repository.get_worker_run(session, run_id, lock=True)
        return run is not None and await end_unfinished(runtime, session, run, message, kind)


def worker_exited(runtime: IngestRuntime) -> ExitCallback:
    """The launcher's exit callback: a worker that ended without finishing its run fails it, with the
    launcher's reason when it gave one, else the exit code or signal."""

    async def on_exit(run_id: uuid.UUID, code: int, reason: str | None = None,
                      kind: ErrorKind = "terminal") -> None:
        # The worker wrote its last events (run.finished) into our outbox just before it ended:
        # publish them now, not at the relay's next poll.
        runtime.outbox.notify()
        if reason is not None:
            message = reason
        elif code < 0:
            message = f"worker was stopped by {_signal_name(-code)}"
        else:
            message = f"worker exited with code {code}"
        await end_if_live(runtime, run_id, message, kind)

    return on_exit


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


async def launch_queued(runtime: IngestRuntime, launcher: Launcher) -> int:
    """Start a worker for every queued run this replica can claim; returns how many started."""
    async with runtime.sessions() as session:
        queued = await repository.queued_run_ids(session)
    started = 0
    for run_id in queued:
        async with runtime.transaction() as session:
            if not await repository.claim_for_launch(session, run_id):
                continue
            run = await repository.get_worker_run(session, run_id)
            requested = RunRequested.model_validate(run.spec) if run is not None else None
        with log_context(run_id=str(run_id)):
            try:
                worker_ref = await launcher.launch(worker_spec(runtime.settings, run_id, requested))
            except (TidemarkError, OSError) as exc:
                WORKER_LAUNCHES.labels(launcher.name, "failed").inc()
                reason = exc.message if isinstance(exc, TidemarkError) else (exc.strerror or type(exc).__name__)
                log.error("could not start a worker", extra=fields(error=reason))
                await end_if_live(runtime, run_id, f"could not start a worker: {reason}", "transient")
                continue
            WORKER_LAUNCHES.labels(launcher.name, "started").inc()
            async with runtime.transaction() as session:
                await repository.set_worker_ref(session, run_id, worker_ref)
            started += 1
    return started


async def launch_loop(runtime: IngestRuntime, launcher: Launcher, wakeup: LaunchWakeup) -> None:
    """Launch queued runs when woken, and on a timer (runs recorded before a restart)."""
    settings = runtime.settings
    while True:
        wakeup.clear()
        try:
            await launch_queued(runtime, launcher)
        except Exception:
            # The loop must outlive a database hiccup; the next wakeup or tick retries.
            log.exception("launch loop: could not launch queued runs; will retry")
        await wait_for_event(wakeup, settings.heartbeat_seconds)


async def reap_silent(runtime: IngestRuntime) -> int:
    """End live runs whose worker has been silent longer than the heartbeat timeout (failed, or
    cancelled when a cancel was asked for)."""
    settings = runtime.settings
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.heartbeat_timeout_seconds)
    start_limit = settings.start_timeout_seconds()
    async with runtime.transaction() as session:
        failed = 0
        for run in await repository.silent_runs(session, cutoff):
            if run.heartbeat_at is None and run.status != RunStatus.RUNNING.value:
                if now - (run.started_at or run.requested_at) < timedelta(seconds=start_limit):
                    continue  # a pod still being scheduled or pulling its image
                message = f"worker did not start within {start_limit:g}s"
            else:
                message = "worker stopped heartbeating"
            failed += await end_unfinished(runtime, session, run, message)
    return failed


async def stop_overdue(runtime: IngestRuntime) -> int:
    """Stop running runs that ran longer than their pipeline's ``timeout_seconds`` (they end failed);
    returns how many it began to stop."""
    now = utcnow()
    overdue = []
    async with runtime.transaction() as session:
        for run in await repository.running_runs(session):
            limit = run.spec.get("timeout_seconds")
            if run.cancel_reason is None and limit and run.started_at is not None \
                    and now - run.started_at >= timedelta(seconds=limit):
                run.cancel_reason = timeout_reason(limit)
                overdue.append((run.run_id, run.worker_ref))
    for run_id, worker_ref in overdue:
        log.warning("run timed out; stopping it", extra=fields(run_id=str(run_id)))
        _stop_in_background(runtime, run_id, worker_ref)
    return len(overdue)


async def reap_loop(runtime: IngestRuntime) -> None:
    settings = runtime.settings
    while True:
        await asyncio.sleep(settings.heartbeat_seconds)
        try:
            await reap_silent(runtime)
            await stop_overdue(runtime)
        except Exception:
            log.exception("heartbeat reaper: could not check runs; will retry")
