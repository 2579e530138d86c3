"""The worker's life: mark the run running, load it in a thread while heartbeating, finish it.

Every state change and its event go into ingest-svc's database in one transaction
(its outbox); the service's relay publishes them. The worker needs no broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidemark.bus import Outbox
from tidemark.bus.retry import backoff_seconds
from tidemark.db import create_engine, session_factory, unavailable, utcnow
from tidemark.events import RunFinished, RunProgress, RunRequested, RunStarted, RunStatus, may_move
from tidemark.events.contracts import RunError
from tidemark.logs import fields, log_context
from tidemark_ingest import repository
from tidemark_ingest.models import TABLES
from tidemark_ingest.settings import IngestSettings, WorkerSettings
from tidemark_ingest.stopping import ending
from tidemark_ingest.worker.load import INTERNAL_ERROR, Outcome, Progress, ingest
from tidemark_ingest.worker.logship import LogShipper
from tidemark_ingest.worker.maintain import maintain

STOPPED_BY_SIGTERM = "worker was stopped by SIGTERM"

log = logging.getLogger(__name__)

SOURCE = "ingest-svc"


async def run_worker(settings: IngestSettings, run_id: uuid.UUID, startup_seconds: float | None = None) -> int:
    """Do the run; the exit code is 0 when it succeeded (also partially), 1 when it failed.
    ``startup_seconds``: from its launch to the worker's first line of code, when the launcher said."""
    with log_context(run_id=str(run_id)):
        engine = create_engine(settings.database)
        try:
            with LogShipper(run_id) as logs:
                log.info("worker up", extra=fields(
                    pid=os.getpid(), launched_at=settings.launched_at if isinstance(settings, WorkerSettings) else None,
                    startup_seconds=None if startup_seconds is None else round(startup_seconds, 3)))
                worker = _Worker(settings, session_factory(engine), Outbox(TABLES.outbox, source=SOURCE), run_id)
                worker.logs = logs
                return await worker.run()
        finally:
            await engine.dispose()


class _Worker:
    def __init__(self, settings: IngestSettings, sessions: async_sessionmaker[AsyncSession], outbox: Outbox,
                 run_id: uuid.UUID) -> None:
        self.settings = settings
        self.sessions = sessions
        self.outbox = outbox
        self.run_id = run_id
        self.progress = Progress()
        self.logs = LogShipper(run_id)  # run_worker installs the one that hears the process's log

    async def run(self) -> int:
        request = await self._start()
        if isinstance(request, int):
            return request
        beat = asyncio.create_task(self._heartbeat(request))
        # SIGTERM (a cancel, or the service stopping) stops reading at the next batch, commits nothing
        # more, and ends the run here; without this handler the process would just die.
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop)
        try:
            work = maintain if request.maintenance is not None else ingest
            outcome = await asyncio.to_thread(work, self.settings, request, self.progress)
        except Exception:
            log.exception("run failed unexpectedly")
            outcome = Outcome(RunStatus.FAILED, error=RunError(message=INTERNAL_ERROR, kind="terminal"))
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        ended = await self._finish_when_possible(request, outcome)
        return 1 if (ended or outcome.status) is RunStatus.FAILED else 0

    def _stop(self) -> None:
        log.info("asked to stop (SIGTERM); stopping at the next batch without committing")
        self.progress.stop()

    async def _start(self) -> RunRequested | int:
        """The run's request once it is marked running, or the exit code when there is nothing to do."""
        async with self.sessions() as session, session.begin():
            run = await repository.get_worker_run(session, self.run_id, lock=True)
            if run is None:
                log.error("no such run in the ingest database")
                return 2
            if RunStatus(run.status).terminal:
                log.warning("run already finished; nothing to do", extra=fields(status=run.status))
                return 0
            request = RunRequested.model_validate(run.spec)
            now = utcnow()
            run.status = RunStatus.RUNNING.value
            run.worker_ref = run.worker_ref or str(os.getpid())
            run.started_at = now
            run.heartbeat_at = now
            await self.outbox.add(session, RunStarted(
                run_id=run.run_id, pipeline_id=run.pipeline_id, launcher=run.launcher, worker_ref=run.worker_ref,
            ))
        log.info("run started", extra=fields(pipeline=request.pipeline.name, streams=len(request.pipeline.streams)))
        return request

    async def _heartbeat(self, request: RunRequested) -> None:
        reported: tuple[str | None, int] = (None, 0)
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                async with self.sessions() as session, session.begin():
                    if not await repository.touch_heartbeat(session, self.run_id):
                        # Failed by the reaper (or ended otherwise) while this worker still loads: stop before
                        # the commit, or a retry's commit would come on top of this one (rows twice in append).
                        log.warning("the run is no longer running here; it was ended by the service; stopping")
                        self.progress.stop()
                        return
                    current = (self.progress.stream, self.progress.rows_read)
                    if current[0] is not None and current != reported:
                        await self.outbox.add(session, RunProgress(
                            run_id=self.run_id, pipeline_id=request.pipeline.pipeline_id,
                            stream=current[0], rows_read=current[1],
                        ))
                        reported = current
                    await self.logs.ship(session, self.outbox, request.pipeline.pipeline_id)
            except Exception:
                # A missed beat is survivable (the timeout allows several); a dead heartbeat is not.
                log.exception("heartbeat failed; will retry")

    async def _finish_when_possible(self, request: RunRequested, outcome: Outcome) -> RunStatus | None:
        """:meth:`_finish`, waiting out the database being away (PostgreSQL restarting) for as long as the
        heartbeat timeout allows, so the run ends with its own reason rather than "worker exited with code 1"."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.heartbeat_timeout_seconds
        attempt = 0
        while True:
            try:
                return await self._finish(request, outcome)
            except (SQLAlchemyError, OSError) as exc:
                if not unavailable(exc) or loop.time() >= deadline:
                    raise
                delay = backoff_seconds(attempt, base=0.5, cap=5)
                attempt += 1
                log.warning("cannot record the run's ending: the database is away; will retry",
                            extra=fields(error=type(exc).__name__, retry_in_s=round(delay, 2)))
                await asyncio.sleep(delay)

    async def _finish(self, request: RunRequested, outcome: Outcome) -> RunStatus | None:
        """Record the outcome; the status the run ended with here (None: someone else ended it first)."""
        async with self.sessions() as session, session.begin():
            run = await repository.get_worker_run(session, self.run_id, lock=True)
            if run is not None and outcome.status is RunStatus.CANCELLED:
                outcome = _stopped(outcome, run.cancel_reason)
            if run is None or not may_move(run.status, outcome.status):
                log.warning("run was finished by someone else; keeping their result",
                            extra=fields(status=run.status if run else None))
                return None
            run.status = outcome.status.value
            run.finished_at = utcnow()
            run.error = outcome.error.message if outcome.error else None
            run.stats = [s.model_dump(mode="json") for s in outcome.streams]
            await self.logs.ship(session, self.outbox, request.pipeline.pipeline_id, everything=True)
            await self.outbox.add(session, RunFinished(
                run_id=self.run_id, pipeline_id=request.pipeline.pipeline_id, status=outcome.status,
                streams=outcome.streams, error=outcome.error,
            ))
        log.info("run finished", extra=fields(status=outcome.status.value,
                                              rows_written=sum(s.rows_written for s in outcome.streams)))
        return outcome.status


def _stopped(outcome: Outcome, cancel_reason: str | None) -> Outcome:
    """A run stopped on purpose ends as its reason says (cancelled; failed for a timeout); a worker
    stopped for any other reason (the service stopping) fails its run, and a retry may help."""
    if cancel_reason is not None:
        status, error = ending(cancel_reason)
        return Outcome(status, outcome.streams, error)
    return Outcome(RunStatus.FAILED, outcome.streams, RunError(message=STOPPED_BY_SIGTERM, kind="transient"))
