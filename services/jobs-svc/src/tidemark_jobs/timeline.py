"""The picture of the last and the next 24 hours: one lane per pipeline, each run a bar from its
start (or queueing) to its end (or now), coloured by status, upcoming runs drawn ahead of now.

Bounded whatever the read model holds: at most ``LANES`` pipelines (the most recently active that
match the page's filters) and ``RUNS`` runs, found through the list's indexes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.events import RunStatus
from tidemark_jobs.models import RunView
from tidemark_jobs.projection import micros
from tidemark_jobs.query import RunFilter

HALF = timedelta(hours=24)
LANES = 20
RUNS = 2000
SCAN = 500
WIDTH = 960.0
LANE_HEIGHT = 22
LABEL_WIDTH = 170.0


@dataclass(frozen=True)
class Bar:
    run_id: uuid.UUID
    status: str
    x: float
    width: float
    title: str
    upcoming: bool


@dataclass
class Lane:
    pipeline_id: uuid.UUID
    name: str
    bars: list[Bar] = field(default_factory=list)


@dataclass(frozen=True)
class Picture:
    lanes: list[Lane]
    more_pipelines: bool
    ticks: list[tuple[float, str]]
    now_x: float
    width: float = WIDTH
    label_width: float = LABEL_WIDTH
    lane_height: int = LANE_HEIGHT

    @property
    def height(self) -> int:
        return max(1, len(self.lanes)) * self.lane_height + 24


def _x(at: datetime, start: datetime) -> float:
    return max(0.0, min(WIDTH, (at - start) / (2 * HALF) * WIDTH))


def _fmt(at: datetime | None) -> str:
    return at.isoformat(" ", "minutes")[:16] + " UTC" if at is not None else "-"


async def picture(session: AsyncSession, where: RunFilter, now: datetime) -> Picture:
    start, end = now - HALF, now + HALF
    # Whatever section the page shows, the picture shows every status of the filtered runs.
    scope = RunFilter((), where.pipeline_ids, where.connection_ids, where.triggers, where.text, where.ranges)
    recent = scope.apply(sa.select(RunView.pipeline_id, RunView.pipeline_name)
                         .where(RunView.list_order >= micros(start)).order_by(RunView.list_order.desc()).limit(SCAN))
    ahead = scope.apply(sa.select(RunView.pipeline_id, RunView.pipeline_name)
                        .where(RunView.status == RunStatus.SCHEDULED, RunView.scheduled_for >= now,
                               RunView.scheduled_for < end).order_by(RunView.scheduled_for).limit(SCAN))
    lanes: dict[uuid.UUID, Lane] = {}
    more = False
    for query in (recent, ahead):
        for pipeline_id, name in (await session.execute(query)).all():
            if pipeline_id in lanes:
                continue
            if len(lanes) == LANES:
                more = True
                break
            lanes[pipeline_id] = Lane(pipeline_id, name or str(pipeline_id))
    if lanes:
        # Two index ranges, not one OR: each lane's runs queued in the window (pipeline, list order),
        # and its upcoming ones. Only the columns a bar needs.
        columns = (RunView.run_id, RunView.pipeline_id, RunView.pipeline_name, RunView.status,
                   RunView.scheduled_for, RunView.queued_at, RunView.started_at, RunView.finished_at)
        ids = list(lanes)
        past = scope.apply(sa.select(*columns).where(RunView.pipeline_id.in_(ids), RunView.list_order >= micros(start))
                           .order_by(RunView.list_order.desc()).limit(RUNS))
        upcoming = scope.apply(sa.select(*columns).where(
            RunView.pipeline_id.in_(ids), RunView.status == RunStatus.SCHEDULED, RunView.scheduled_for >= start,
            RunView.scheduled_for < end).limit(RUNS))
        for runs in (past, upcoming):
            for run in (await session.execute(runs)).all():
                bar = _bar(run, start, now)
                if bar is not None:
                    lanes[run.pipeline_id].bars.append(bar)
    ordered = sorted(lanes.values(), key=lambda lane: lane.name.lower())
    ticks = [(_x(start + timedelta(hours=h), start), (start + timedelta(hours=h)).strftime("%d %H:%M"))
             for h in range(0, 49, 6)]
    return Picture(ordered, more, ticks, _x(now, start))


def _bar(run: Any, start: datetime, now: datetime) -> Bar | None:
    if run.status == RunStatus.SCHEDULED:
        if run.scheduled_for is None or run.scheduled_for < start:
            return None
        return Bar(run.run_id, run.status, _x(run.scheduled_for, start), 6.0,
                   f"{run.pipeline_name}: scheduled for {_fmt(run.scheduled_for)}", upcoming=True)
    begin = run.started_at or run.queued_at
    if begin is None:
        return None
    finish = run.finished_at or now
    x = _x(begin, start)
    title = f"{run.pipeline_name}: {run.status}, {_fmt(begin)} to {_fmt(run.finished_at) if run.finished_at else 'now'}"
    return Bar(run.run_id, run.status, x, max(3.0, _x(finish, start) - x), title, upcoming=False)


def svg(picture: Picture, lane_link: Callable[[uuid.UUID], str]) -> str:
    """The picture as inline SVG. Built here rather than in the template: a few hundred bars are
    the bulk of the page, and plain string building renders them several times faster."""
    p, left = picture, picture.label_width
    bottom = p.height - 18
    parts = [f'<svg id="timeline" width="100%" viewBox="0 0 {left + p.width + 40:.0f} {p.height}" role="img" '
             'aria-label="Runs of the last and next 24 hours, one lane per pipeline">']
    for x, label in p.ticks:
        parts.append(f'<line x1="{left + x:.1f}" y1="0" x2="{left + x:.1f}" y2="{bottom}" stroke="#eef1f4"/>'
                     f'<text x="{left + x:.1f}" y="{p.height - 4}" text-anchor="middle">{label}</text>')
    height = p.lane_height - 9
    for index, lane in enumerate(p.lanes):
        y = index * p.lane_height
        name = escape(lane.name)
        parts.append(f'<g class="lane" data-pipeline="{name}"><text x="0" y="{y + 15}" style="fill:var(--fg)">'
                     f'<a href="{escape(lane_link(lane.pipeline_id))}">{escape(lane.name[:24])}</a></text>')
        for bar in lane.bars:
            paint = (f'fill="none" stroke="var(--{bar.status})" stroke-width="1.5"' if bar.upcoming
                     else f'fill="var(--{bar.status})"')
            parts.append(f'<a href="/jobs/runs/{bar.run_id}"><rect class="bar bar-{bar.status}" '
                         f'x="{left + bar.x:.1f}" y="{y + 5}" width="{bar.width:.1f}" height="{height}" rx="2" '
                         f'{paint}><title>{escape(bar.title)}</title></rect></a>')
        parts.append("</g>")
    now = left + p.now_x
    parts.append(f'<line x1="{now:.1f}" y1="0" x2="{now:.1f}" y2="{bottom}" stroke="var(--failed)" '
                 f'stroke-dasharray="3 3"/><text x="{now + 3:.1f}" y="10" style="fill:var(--failed)">now</text></svg>')
    return "".join(parts)
