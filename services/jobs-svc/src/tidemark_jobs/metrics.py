"""jobs-svc's run metrics, declared once. Labels are statuses, triggers and pipeline state classes:
small fixed sets. Pipeline names and ids are never labels (per-pipeline detail is the API's job).

The gauges describe the read model; a background task refreshes them from ``run_totals``,
``pipeline_health`` and one indexed lookup, so a scrape never queries the database. The histogram
and counters count the endings this replica applied (each event is applied by one replica).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidemark.events import RunStatus
from tidemark_jobs.models import PipelineHealth, RunTotal, RunView

log = logging.getLogger(__name__)

RUNS = Gauge("tidemark_runs", "Runs in the read model, by status and trigger.", ["status", "trigger"])
RUN_DURATION = Histogram(
    "tidemark_run_duration_seconds", "Time from a run's worker starting to the run ending, by status.", ["status"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
RUNS_ROWS_WRITTEN = Counter("tidemark_runs_rows_written_total", "Rows written by ended runs.")
RUNS_BYTES_WRITTEN = Counter("tidemark_runs_bytes_written_total", "Bytes written by ended runs.")
QUEUE_DEPTH = Gauge("tidemark_runs_queue_depth", "Runs queued: waiting to start.")
OLDEST_QUEUED = Gauge("tidemark_runs_oldest_queued_age_seconds", "Age of the oldest queued run; 0 when none waits.")
PIPELINES = Gauge(
    "tidemark_pipelines", "Pipelines by the state of their last ended run: `succeeding` (it succeeded) or "
    "`failing` (it failed, partially succeeded or was cancelled).", ["state"],
)
SINCE_SUCCESS = Gauge(
    "tidemark_pipelines_since_success_seconds",
    "The longest time since a success among pipelines in this state (for one that never succeeded: since "
    "its first ended run). Alert on `failing`.", ["state"],
)
STATES = ("succeeding", "failing")


def observe_finished(view: RunView) -> None:
    if view.started_at is not None and view.finished_at is not None:
        RUN_DURATION.labels(view.status).observe(max(0.0, (view.finished_at - view.started_at).total_seconds()))
    RUNS_ROWS_WRITTEN.inc(view.rows_written)
    RUNS_BYTES_WRITTEN.inc(view.bytes_written)


async def refresh(session: AsyncSession, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    # Every query first, then every gauge set with no await between: a scrape never sees half a refresh
    # (say the queue empty and its oldest run still waiting).
    totals = (await session.execute(sa.select(RunTotal.status, RunTotal.trigger, RunTotal.runs))).all()
    oldest = await session.scalar(sa.select(RunView.queued_at).where(RunView.status == RunStatus.QUEUED)
                                  .order_by(RunView.list_order).limit(1))
    state = sa.case((PipelineHealth.last_status == RunStatus.SUCCEEDED, "succeeding"), else_="failing")
    since = sa.func.min(sa.func.coalesce(PipelineHealth.last_success_at, PipelineHealth.first_finished_at))
    found = {row[0]: row for row in (await session.execute(
        sa.select(state, sa.func.count(), since).group_by(state))).all()}
    queued = 0
    for status, trigger, runs in totals:
        RUNS.labels(status, trigger or "unknown").set(runs)
        queued += runs if status == RunStatus.QUEUED else 0
    QUEUE_DEPTH.set(queued)
    OLDEST_QUEUED.set(max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0)
    for name in STATES:
        _, count, stalest = found.get(name, (name, 0, None))
        PIPELINES.labels(name).set(count)
        SINCE_SUCCESS.labels(name).set(max(0.0, (now - stalest).total_seconds()) if stalest is not None else 0)


async def refresh_forever(sessions: async_sessionmaker[AsyncSession], every: float) -> None:
    while True:
        try:
            async with sessions() as session:
                await refresh(session)
        except Exception:  # a metrics refresh never takes the service down; the next one may work
            log.exception("refreshing run metrics failed")
        await asyncio.sleep(every)
