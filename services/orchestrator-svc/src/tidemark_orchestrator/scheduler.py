"""The scheduler: schedule ticks become upcoming runs, and due ones are queued, each exactly once.

A pass (:func:`scheduler_pass`) first queues, set-based, every due tick that needs no decision
(:func:`fire_lone_ticks`: the only due tick of an active pipeline with no active run), a few
statements per :data:`FIRE_BATCH` ticks: at the top of the minute thousands are due at once. Then it
looks at pipelines whose ``next_check_at`` has come (half their stored ticks fired, a due tick
needing a decision, a recheck), a chunk of :data:`CHUNK` pipelines per transaction holding their
rows, and finally admits what may start (:mod:`tidemark_orchestrator.admission`). For a chunk
(:func:`sync_pipelines`), with a fixed number of statements however many pipelines it holds:

1. **Materialise**: the ticks from where each pipeline left off up to ``now + horizon`` (at most
   ``max_scheduled_per_pipeline`` upcoming at a time) are stored as runs in status ``scheduled``,
   each with ``run.scheduled``. Ticks already past when first seen (the orchestrator was down, or the
   pipeline paused) follow the pipeline's ``catchup``: ``last`` keeps the latest, ``all`` the most
   recent ``max_scheduled_per_pipeline``, ``none`` none.
2. **Prune** due ticks by ``catchup``: ``last`` skips all but the latest due tick, ``none`` skips
   ticks more than ``misfire_grace_seconds`` late; a skipped tick ends ``cancelled`` with its reason
   (``run.finished``).
3. **Fire** the earliest remaining due tick, by the pipeline's ``overlap`` when a run of it is still
   active (``queue``: wait for it, ``skip``: the tick ends ``cancelled``, ``cancel_previous``: cancel
   it): ``scheduled → queued`` with ``run.queued`` (trigger ``schedule``, the same run id). Then
   :mod:`tidemark_orchestrator.admission` sends what may start to the workers (``run.requested``).

Exactly once across replicas and restarts: a tick is one row (unique ``(pipeline_id,
scheduled_for)``, inserted only if absent) and it moves on only through ``UPDATE … WHERE
status = 'scheduled'``; the row locks (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) keep two replicas
from working on one pipeline at once, so the one-active-run check holds too.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice, takewhile

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.aio import wait_for_event
from tidemark.errors import TidemarkError
from tidemark.events import EventPayload, RunError, RunFinished, RunQueued, RunScheduled, RunStatus, RunUnscheduled
from tidemark.logs import fields
from tidemark_orchestrator import admission, repository
from tidemark_orchestrator.cancel import cancel_run
from tidemark_orchestrator.deps import OrchestratorRuntime
from tidemark_orchestrator.models import Pipeline, Run
from tidemark_orchestrator.schedule import Schedule, ScheduleError
from tidemark_orchestrator.settings import OrchestratorSettings

log = logging.getLogger(__name__)


CHUNK = 500  # pipelines per transaction of a pass
FIRE_BATCH = 2_000  # lone due ticks queued per transaction (fire_lone_ticks)
RECHECK_SECONDS = 60.0  # a due tick waiting for its pipeline's active run is looked at again this late at most


@dataclass(frozen=True)
class Tick:
    """A tick's run, as a pass reports it."""

    id: uuid.UUID
    pipeline_id: uuid.UUID
    scheduled_for: datetime | None


@dataclass
class Outcome:
    """What one pass did to a pipeline's ticks."""

    scheduled: list[Run] = field(default_factory=list)
    queued: list[Tick] = field(default_factory=list)
    skipped: list[Run] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        self.scheduled += other.scheduled
        self.queued += other.queued
        self.skipped += other.skipped


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
    return await sync_pipelines(runtime, session, [pipeline], now)


async def sync_pipelines(runtime: OrchestratorRuntime, session: AsyncSession, pipelines: Sequence[Pipeline],
                         now: datetime, *, admit: bool = True) -> Outcome:
    """One pass over pipelines whose rows the caller holds, with a fixed number of statements
    whatever their number: thousands of ticks due at one minute fire in a few round trips.
    ``admit=False`` leaves the queued runs to the caller's admission (a pass admits once, after
    every chunk fired: one admission per chunk would take its lock and count the active runs
    again for each)."""
    outcome = Outcome()
    settings = runtime.settings
    recheck = now + timedelta(seconds=RECHECK_SECONDS)
    schedules: dict[uuid.UUID, tuple[Pipeline, Schedule]] = {}
    for pipeline in pipelines:
        schedule = schedule_of(pipeline) if pipeline.status == "active" else None
        if schedule is None:
            pipeline.next_check_at = recheck if pipeline.status == "active" and pipeline.schedule else None
            continue
        if pipeline.ticks_from is None:
            pipeline.ticks_from = now
        schedules[pipeline.id] = (pipeline, schedule)
    if not schedules:
        return outcome
    ids = list(schedules)
    upcoming = await repository.scheduled_runs_of(session, ids)
    latest = await repository.latest_ticks(session, ids)
    wanted = [(pid, tick) for pid, (pipeline, schedule) in schedules.items()
              for tick in _ticks_to_store(pipeline, schedule, len(upcoming[pid]), latest.get(pid), now, settings)]
    events: list[EventPayload] = []
    for run in await repository.add_ticks(session, wanted, now):
        upcoming[run.pipeline_id].append(run)
        outcome.scheduled.append(run)
        pipeline = schedules[run.pipeline_id][0]
        assert run.scheduled_for is not None
        events.append(RunScheduled(run_id=run.id, pipeline_id=run.pipeline_id, pipeline_name=pipeline.name,
                                   scheduled_for=run.scheduled_for))
    active = await repository.active_runs_of(session, ids)
    to_fire: list[tuple[Pipeline, Run]] = []
    for pid, (pipeline, schedule) in schedules.items():
        runs = sorted(upcoming[pid], key=_tick)
        due = [r for r in runs if _tick(r) <= now]
        waiting = await _prune(runtime, session, pipeline, due, now, outcome, events)
        pipeline.next_check_at = _next_check(schedule, [r for r in runs if _tick(r) > now], now, settings)
        if not waiting:
            continue
        if active[pid] and pipeline.overlap == "skip":
            current = active[pid][0]
            reason = f"skipped: run {current.id} of this pipeline was still {current.status} (overlap: skip)"
            for run in waiting:
                await _skip(runtime, session, pipeline, run, now, reason, outcome, events)
        elif active[pid] and pipeline.overlap == "queue":
            pipeline.next_check_at = recheck  # the active run's end wakes it sooner
            for run in waiting:  # decided: it waits (and _decide_soon leaves it be)
                run.waiting_reason = f"waiting for run {active[pid][0].id} of this pipeline to end (overlap: queue)"
        else:
            for previous in active[pid]:  # overlap: cancel_previous
                await cancel_run(runtime, session, pipeline.id, previous.id,
                                 "superseded by a newer run (overlap: cancel_previous)", admit=False)
            to_fire.append((pipeline, waiting[0]))
    fired = await repository.fire_ticks(session, [run for _, run in to_fire], now)
    for pipeline, run in to_fire:
        if run.id in fired:
            outcome.queued.append(Tick(run.id, run.pipeline_id, run.scheduled_for))
            events.append(admission.queued_event(pipeline, run))
    await runtime.emit_many(session, events)
    if fired and admit:
        await admission.admit(runtime, session, now)
    return outcome


def _tick(run: Run) -> datetime:
    assert run.scheduled_for is not None
    return run.scheduled_for


def _ticks_to_store(pipeline: Pipeline, schedule: Schedule, stored: int, latest: datetime | None,
                    now: datetime, settings: OrchestratorSettings) -> list[datetime]:
    """Ticks to store as upcoming runs: missed ones by ``catchup``, then those up to the horizon,
    at most ``max_scheduled_per_pipeline`` upcoming in all."""
    assert pipeline.ticks_from is not None
    start = max(pipeline.ticks_from, latest) if latest is not None else pipeline.ticks_from
    room = settings.max_scheduled_per_pipeline - stored
    missed_limit = {"last": 1, "all": room, "none": 0}.get(pipeline.catchup, 1)
    # Usually every tick up to now is stored already (start > now): nothing was missed.
    missed = [] if start >= now else list(
        islice(takewhile(lambda t: t > start, schedule.until(now)), max(0, missed_limit)))
    missed.reverse()
    horizon = now + timedelta(seconds=settings.schedule_horizon_seconds)
    upcoming = islice(takewhile(lambda t: t <= horizon, schedule.after(max(start, now))),
                      max(0, room - len(missed)))
    return [*missed, *upcoming]


def _next_check(schedule: Schedule, later: Sequence[Run], now: datetime, settings: OrchestratorSettings) -> datetime:
    """When the pipeline next needs a pass: when half its stored ticks have fired (each fires
    without one, see :func:`fire_lone_ticks`), so it is topped up in batches rather than a tick
    at a time; else when the schedule's next tick comes within the horizon (never sooner than the
    next poll). A due tick that needs a decision brings its pipeline's pass forward
    (:func:`_decide_soon`)."""
    soonest = now + timedelta(seconds=settings.scheduler_poll_seconds)
    if later:
        low_water = max(1, settings.max_scheduled_per_pipeline // 2)
        return max(_tick(later[max(0, len(later) - low_water)]), soonest)
    horizon = timedelta(seconds=settings.schedule_horizon_seconds)
    return max(schedule.next_after(now) - horizon, soonest)


async def _prune(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline, due: list[Run],
                 now: datetime, outcome: Outcome, events: list[EventPayload]) -> list[Run]:
    """Skip due ticks ``catchup`` says to skip; returns those left to fire, earliest first."""
    grace = timedelta(seconds=runtime.settings.misfire_grace_seconds)
    waiting: list[Run] = []
    for i, run in enumerate(due):
        reason = None
        if pipeline.catchup == "last" and i < len(due) - 1:
            reason = f"skipped: superseded by the tick at {_tick(due[-1]).isoformat()} (catchup: last)"
        elif pipeline.catchup == "none" and now - _tick(run) > grace:
            reason = f"skipped: could not fire within {grace.total_seconds():g}s of its time (catchup: none)"
        if reason is None:
            waiting.append(run)
        else:
            await _skip(runtime, session, pipeline, run, now, reason, outcome, events)
    return waiting


async def _skip(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline, run: Run, now: datetime,
                reason: str, outcome: Outcome, events: list[EventPayload]) -> None:
    if await repository.skip_scheduled(session, run, now, reason):
        outcome.skipped.append(run)
        events.append(RunFinished(run_id=run.id, pipeline_id=pipeline.id, status=RunStatus.CANCELLED,
                                  error=RunError(message=reason, kind="terminal")))


async def scheduler_pass(runtime: OrchestratorRuntime, now: datetime) -> Outcome:
    """One pass: every pipeline whose ``next_check_at`` has come, in chunks of :data:`CHUNK`, each
    chunk in one transaction holding its pipelines' rows (a replica's pass takes other chunks)."""
    total = Outcome()
    async with runtime.sessions() as session:
        stray = await repository.stray_ticks(session)
    for pipeline_id in stray:
        # Normally withdrawn by the change itself; this catches a change made some other way.
        async with runtime.transaction() as session:
            pipeline = await repository.lock_scheduled_pipeline(session, pipeline_id)
            if pipeline is not None and (pipeline.status != "active" or not pipeline.schedule):
                await withdraw(runtime, session, pipeline, f"pipeline {pipeline.status}"
                               if pipeline.status != "active" else "schedule removed")
    total.queued += await fire_lone_ticks(runtime, now)
    await _decide_soon(runtime, now)
    seen: set[uuid.UUID] = set()
    while True:
        pipelines: list[Pipeline] = []
        # A long pass takes the time anew for each chunk: ticks coming due meanwhile fire in this
        # pass, and a run's requested_at is when it was queued, not when the pass began.
        now = max(now, runtime.state.clock())
        try:
            async with runtime.transaction() as session:
                pipelines = [p for p in await repository.lock_due_pipelines(session, now, CHUNK) if p.id not in seen]
                seen.update(p.id for p in pipelines)
                if pipelines:
                    total.add(await sync_pipelines(runtime, session, pipelines, now, admit=False))
        except (TidemarkError, DBAPIError, OSError):
            raise  # the database is away: the whole pass waits for the next poll
        except Exception:
            log.exception("scheduler pass failed for a chunk of pipelines; going over them one by one")
            total.add(await _one_by_one(runtime, [p.id for p in pipelines], now))
        if len(pipelines) < CHUNK:
            break
    # What this pass queued, and retries whose backoff ran out; a batch at a time.
    while True:
        async with runtime.transaction() as session:
            if len(await admission.admit(runtime, session, max(now, runtime.state.clock()))) < admission.BATCH:
                break
    return total


async def fire_lone_ticks(runtime: OrchestratorRuntime, now: datetime) -> list[Tick]:
    """First the ticks that need no decision (the only due tick of a pipeline with no active run),
    a batch of :data:`FIRE_BATCH` per transaction in a few statements, whatever the number of
    pipelines: at the top of the minute every every-minute schedule is due at once, and this is
    what gets them queued within a second or two. The per-pipeline chunks that follow store the
    next ticks and decide the rest (catch-up, overlap)."""
    grace = timedelta(seconds=runtime.settings.misfire_grace_seconds)
    async with runtime.sessions() as session:
        candidates = await repository.lone_due_ticks(session, now)
    fired: list[Tick] = []
    for start in range(0, len(candidates), FIRE_BATCH):
        now = max(now, runtime.state.clock())
        async with runtime.transaction() as session:
            batch = await repository.fire_lone_due_ticks(session, candidates[start:start + FIRE_BATCH], now, grace)
            await runtime.emit_many(session, [RunQueued(
                run_id=tick.id, pipeline_id=tick.pipeline_id, pipeline_name=tick.pipeline_name,
                connection_id=tick.connection_id, trigger="schedule", scheduled_for=tick.scheduled_for)
                for tick in batch])
        fired += [Tick(tick.id, tick.pipeline_id, tick.scheduled_for) for tick in batch]
    return fired


async def _decide_soon(runtime: OrchestratorRuntime, now: datetime) -> None:
    """Due ticks :func:`fire_lone_ticks` left (a pipeline with an active run or several due ticks)
    are decided by their pipeline's pass: bring it forward to now, once (a tick left to wait says
    so in ``waiting_reason``; the active run's end wakes its pipeline). A read first: a pass that
    finds none writes nothing (on SQLite every write takes the one writer's lock)."""
    undecided = sa.select(Run.pipeline_id).where(Run.status == RunStatus.SCHEDULED.value, Run.scheduled_for <= now,
                                                 Run.waiting_reason.is_(None))
    async with runtime.sessions() as session:
        ids = set((await session.scalars(
            sa.select(Pipeline.id).where(Pipeline.id.in_(undecided), Pipeline.next_check_at > now))).all())
    if not ids:
        return
    async with runtime.transaction() as session:
        await session.execute(
            sa.update(Pipeline).where(Pipeline.id.in_(ids), Pipeline.next_check_at > now)
            .values(next_check_at=now).execution_options(synchronize_session=False))


async def _one_by_one(runtime: OrchestratorRuntime, ids: Sequence[uuid.UUID], now: datetime) -> Outcome:
    """A chunk that failed, each pipeline in its own transaction: one pipeline's failure (a bug, odd
    stored data) must not stop every other schedule; the failing one is looked at again later."""
    total = Outcome()
    for pipeline_id in ids:
        try:
            async with runtime.transaction() as session:
                pipeline = await repository.lock_scheduled_pipeline(session, pipeline_id)
                if pipeline is not None:
                    total.add(await sync_pipeline(runtime, session, pipeline, now))
        except (TidemarkError, DBAPIError, OSError):
            raise
        except Exception:
            log.exception("scheduler pass failed for pipeline %s", pipeline_id,
                          extra=fields(pipeline_id=str(pipeline_id)))
            async with runtime.transaction() as session:
                pipeline = await repository.lock_scheduled_pipeline(session, pipeline_id)
                if pipeline is not None:
                    pipeline.next_check_at = now + timedelta(seconds=RECHECK_SECONDS)
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
