"""The scheduler: schedule ticks become upcoming runs, and due ones are requested, each exactly once.

One pass over a pipeline (:func:`sync_pipeline`), in one transaction holding the pipeline's row:

1. **Materialise**: the ticks from where the pipeline left off up to ``now + horizon`` (at most
   ``max_scheduled_per_pipeline`` upcoming at a time) are stored as runs in status ``scheduled``,
   each with ``run.scheduled``. Ticks already past when first seen (the orchestrator was down, or the
   pipeline paused) follow the pipeline's ``catchup``: ``last`` keeps the latest, ``all`` the most
   recent ``max_scheduled_per_pipeline``, ``none`` none.
2. **Prune** due ticks by ``catchup``: ``last`` skips all but the latest due tick, ``none`` skips
   ticks more than ``misfire_grace_seconds`` late; a skipped tick ends ``cancelled`` with its reason
   (``run.finished``).
3. **Fire** the earliest remaining due tick when the pipeline has no active run: ``scheduled →
   queued`` and ``run.requested`` (trigger ``schedule``, the same run id). With an active run, due
   ticks wait for it to end (one active run per pipeline, as for manual runs).

Exactly once across replicas and restarts: a tick is one row (unique ``(pipeline_id,
scheduled_for)``, inserted only if absent) and it moves on only through ``UPDATE … WHERE
status = 'scheduled'``; the row lock (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) keeps two replicas
from working on one pipeline at once, so the one-active-run check holds too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice, takewhile

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.aio import wait_for_event
from tidemark.errors import TidemarkError
from tidemark.events import RunError, RunFinished, RunScheduled, RunStatus, RunUnscheduled
from tidemark.logs import fields
from tidemark_orchestrator import admission, repository
from tidemark_orchestrator.cancel import cancel_run
from tidemark_orchestrator.deps import OrchestratorRuntime
from tidemark_orchestrator.models import Pipeline, Run
from tidemark_orchestrator.schedule import Schedule, ScheduleError

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one pass did to a pipeline's ticks."""

    scheduled: list[Run] = field(default_factory=list)
    queued: list[Run] = field(default_factory=list)
    skipped: list[Run] = field(default_factory=list)


def schedule_of(pipeline: Pipeline) -> Schedule | None:
    """The pipeline's schedule, or None (manual only, or a stored expression that cannot fire)."""
    if not pipeline.schedule:
        return None
    try:
        return Schedule(str(pipeline.schedule.get("cron", "")), str(pipeline.schedule.get("timezone", "UTC")))
    except ScheduleError as exc:
        log.warning("pipeline %s has a schedule that cannot fire: %s", pipeline.name, exc,
                    extra=fields(pipeline_id=str(pipeline.id)))
        return None


async def withdraw(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline,
                   reason: str) -> list[Run]:
    """Remove every upcoming run of the pipeline, each with ``run.unscheduled`` (read models drop it).
    Deleting, not cancelling, frees the tick's key, so the same instant can be scheduled again later."""
    withdrawn = list(await repository.scheduled_runs(session, pipeline.id))
    for run in withdrawn:
        assert run.scheduled_for is not None
        await runtime.emit(session, RunUnscheduled(run_id=run.id, pipeline_id=pipeline.id,
                                                   scheduled_for=run.scheduled_for, reason=reason))
        await repository.delete_run(session, run)
    return withdrawn


async def sync_pipeline(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline,
                        now: datetime) -> Outcome:
    """One pass over one pipeline whose row the caller holds (see the module's docstring)."""
    outcome = Outcome()
    schedule = schedule_of(pipeline) if pipeline.status == "active" else None
    if schedule is None:
        return outcome
    if pipeline.ticks_from is None:
        pipeline.ticks_from = now
    await _materialise(runtime, session, pipeline, schedule, now, outcome)
    await _fire(runtime, session, pipeline, now, outcome)
    return outcome


async def _materialise(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline,
                       schedule: Schedule, now: datetime, outcome: Outcome) -> None:
    settings = runtime.settings
    assert pipeline.ticks_from is not None
    latest = await repository.latest_tick(session, pipeline.id)
    start = max(pipeline.ticks_from, latest) if latest is not None else pipeline.ticks_from
    room = settings.max_scheduled_per_pipeline - len(await repository.scheduled_runs(session, pipeline.id))
    missed_limit = {"last": 1, "all": room, "none": 0}.get(pipeline.catchup, 1)
    missed = list(islice(takewhile(lambda t: t > start, schedule.until(now)), max(0, missed_limit)))
    missed.reverse()
    horizon = now + timedelta(seconds=settings.schedule_horizon_seconds)
    upcoming = islice(takewhile(lambda t: t <= horizon, schedule.after(max(start, now))),
                      max(0, room - len(missed)))
    for tick in [*missed, *upcoming]:
        run = await repository.add_tick(session, pipeline.id, tick, now)
        if run is None:
            continue
        outcome.scheduled.append(run)
        await runtime.emit(session, RunScheduled(run_id=run.id, pipeline_id=pipeline.id,
                                                 pipeline_name=pipeline.name, scheduled_for=tick))


async def _fire(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline, now: datetime,
                outcome: Outcome) -> None:
    due = list(await repository.scheduled_runs(session, pipeline.id, due_by=now))
    grace = timedelta(seconds=runtime.settings.misfire_grace_seconds)
    waiting: list[Run] = []
    for i, run in enumerate(due):
        assert run.scheduled_for is not None
        reason = None
        if pipeline.catchup == "last" and i < len(due) - 1:
            later = due[-1].scheduled_for
            assert later is not None
            reason = f"skipped: superseded by the tick at {later.isoformat()} (catchup: last)"
        elif pipeline.catchup == "none" and now - run.scheduled_for > grace:
            reason = f"skipped: could not fire within {grace.total_seconds():g}s of its time (catchup: none)"
        if reason is None:
            waiting.append(run)
        else:
            await _skip(runtime, session, pipeline, run, now, reason, outcome)
    if not waiting:
        return
    active = await repository.active_runs(session, pipeline.id)
    if active and pipeline.overlap == "skip":
        reason = f"skipped: run {active[0].id} of this pipeline was still {active[0].status} (overlap: skip)"
        for run in waiting:
            await _skip(runtime, session, pipeline, run, now, reason, outcome)
        return
    if active and pipeline.overlap == "queue":
        return  # waiting ticks fire once the active run ends
    for previous in active:  # overlap: cancel_previous
        await cancel_run(runtime, session, pipeline.id, previous.id,
                         "superseded by a newer run (overlap: cancel_previous)", admit=False)
    run = waiting[0]
    if await repository.move_scheduled(session, run, RunStatus.QUEUED, now):
        outcome.queued.append(run)
        await admission.announce(runtime, session, pipeline, run)
        await admission.admit(runtime, session, now)


async def _skip(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline, run: Run, now: datetime,
                reason: str, outcome: Outcome) -> None:
    if await repository.move_scheduled(session, run, RunStatus.CANCELLED, now, reason):
        outcome.skipped.append(run)
        await runtime.emit(session, RunFinished(run_id=run.id, pipeline_id=pipeline.id, status=RunStatus.CANCELLED,
                                                error=RunError(message=reason, kind="terminal")))


async def scheduler_pass(runtime: OrchestratorRuntime, now: datetime) -> Outcome:
    """One pass over every pipeline, each in its own short transaction."""
    total = Outcome()
    async with runtime.sessions() as session:
        stray = await repository.stray_ticks(session)
        ids = await repository.scheduled_pipeline_ids(session)
    for pipeline_id in stray:
        # Normally withdrawn by the change itself; this catches a change made some other way.
        async with runtime.transaction() as session:
            pipeline = await repository.lock_scheduled_pipeline(session, pipeline_id)
            if pipeline is not None and (pipeline.status != "active" or not pipeline.schedule):
                await withdraw(runtime, session, pipeline, f"pipeline {pipeline.status}"
                               if pipeline.status != "active" else "schedule removed")
    for pipeline_id in ids:
        try:
            async with runtime.transaction() as session:
                pipeline = await repository.lock_scheduled_pipeline(session, pipeline_id)
                if pipeline is None:
                    continue  # locked by a replica's pass or a change: next pass
                done = await sync_pipeline(runtime, session, pipeline, now)
        except (TidemarkError, DBAPIError, OSError):
            raise  # the database is away: the whole pass waits for the next poll
        except Exception:
            # One pipeline's failure (a bug, odd stored data) must not stop every other schedule.
            log.exception("scheduler pass failed for pipeline %s", pipeline_id)
            continue
        total.scheduled += done.scheduled
        total.queued += done.queued
        total.skipped += done.skipped
    async with runtime.transaction() as session:
        await admission.admit(runtime, session, now)  # retries whose backoff ran out
    return total


async def run_scheduler(runtime: OrchestratorRuntime, clock: Callable[[], datetime],
                        wakeup: asyncio.Event) -> None:
    """The background loop: a pass every ``scheduler_poll_seconds``, or sooner when ``wakeup`` is set."""
    poll = runtime.settings.scheduler_poll_seconds
    while True:
        try:
            await scheduler_pass(runtime, clock())
        except (TidemarkError, DBAPIError, OSError) as exc:
            # The database may be away for a while; the next pass picks up where this one stopped.
            log.warning("scheduler pass failed: %s", exc)
        await wait_for_event(wakeup, poll)
        wakeup.clear()
