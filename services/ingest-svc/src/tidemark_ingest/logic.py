"""ingest-svc's rules, as plain functions tests call directly.

A requested run is recorded ``queued``; the launch loop claims it (``starting``) and
starts a worker; the worker marks it ``running``, heartbeats, and finishes it. Two
safety nets fail runs the worker could not finish: the launcher's exit watch (the
process ended, the run is not terminal) and the heartbeat reaper (nothing heard from
the worker for ``heartbeat_timeout_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.db import utcnow
from tidemark.errors import TidemarkError
from tidemark.events import ErrorKind, RunError, RunFinished, RunRequested, RunStatus, StreamStats, may_move
from tidemark.logs import fields, log_context
from tidemark_ingest import repository
from tidemark_ingest.deps import IngestContext, IngestRuntime
from tidemark_ingest.launchers import Launcher, worker_spec
from tidemark_ingest.metrics import ROWS_WRITTEN, WORKER_LAUNCHES, WORKER_RUN_DURATION, WORKER_RUNS
from tidemark_ingest.models import WorkerRun

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
    """Count finished runs. Consuming the event (not the exit) counts runs however they ended."""
    session, envelope = ctx.session, ctx.envelope
    run = await repository.get_worker_run(session, event.run_id)
    if run is None:
        return
    outcome = event.status.value
    WORKER_RUNS.labels(outcome).inc()
    ROWS_WRITTEN.inc(event.rows_written)
    if run.started_at is not None:
        ended = run.finished_at or envelope.occurred_at
        WORKER_RUN_DURATION.labels(outcome).observe(max(0.0, (ended - run.started_at).total_seconds()))


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


async def fail_if_live(runtime: IngestRuntime, run_id: uuid.UUID, message: str,
                       kind: ErrorKind = "terminal") -> bool:
    async with runtime.transaction() as session:
        run = await repository.get_worker_run(session, run_id)
        return run is not None and await fail_run(runtime, session, run, message, kind)


def worker_exited(runtime: IngestRuntime) -> Callable[[uuid.UUID, int], Awaitable[None]]:
    """The launcher's exit callback: a worker that ended without finishing its run fails it."""

    async def on_exit(run_id: uuid.UUID, code: int) -> None:
        message = f"worker was stopped by {_signal_name(-code)}" if code < 0 else f"worker exited with code {code}"
        await fail_if_live(runtime, run_id, message)

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
        with log_context(run_id=str(run_id)):
            try:
                worker_ref = await launcher.launch(worker_spec(runtime.settings, run_id))
            except (TidemarkError, OSError) as exc:
                WORKER_LAUNCHES.labels("failed").inc()
                reason = exc.message if isinstance(exc, TidemarkError) else (exc.strerror or type(exc).__name__)
                log.error("could not start a worker", extra=fields(error=reason))
                await fail_if_live(runtime, run_id, f"could not start a worker: {reason}", "transient")
                continue
            WORKER_LAUNCHES.labels("started").inc()
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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout=settings.heartbeat_seconds)


async def reap_silent(runtime: IngestRuntime) -> int:
    """Fail live runs whose worker has been silent longer than the heartbeat timeout."""
    settings = runtime.settings
    cutoff = utcnow() - timedelta(seconds=settings.heartbeat_timeout_seconds)
    async with runtime.transaction() as session:
        failed = 0
        for run in await repository.silent_runs(session, cutoff):
            if run.heartbeat_at is None and run.status != RunStatus.RUNNING.value:
                message = f"worker did not start within {settings.heartbeat_timeout_seconds:g}s"
            else:
                message = "worker stopped heartbeating"
            failed += await fail_run(runtime, session, run, message)
    return failed


async def reap_loop(runtime: IngestRuntime) -> None:
    settings = runtime.settings
    while True:
        await asyncio.sleep(settings.heartbeat_seconds)
        try:
            await reap_silent(runtime)
        except Exception:
            log.exception("heartbeat reaper: could not check runs; will retry")
