"""/v1/runs: the read API for runs (users and other platforms): filters, sorts, pages, totals,
one run's timeline and attempts, and its worker's log."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from tidemark.errors import NotFoundError
from tidemark.events import TRIGGERS, RunStatus, Trigger
from tidemark_jobs import logstore, query
from tidemark_jobs.deps import Runtime
from tidemark_jobs.detail import run_detail
from tidemark_jobs.models import RunView
from tidemark_jobs.schemas import LogOut, LogPage, RunDetail, RunOut, RunPage

READ_API = (
    "The read API for runs: every run of every pipeline, folded from the `run.*` events, with its "
    "streams, rows and warnings. Trigger runs with the orchestrator's `POST /v1/pipelines/{id}/runs`; "
    "its answer's `run_id` is the `run_id` here."
)
router = APIRouter(prefix="/v1/runs", tags=["runs"])

Since = Annotated[datetime | None, Query(description="From this instant on (inclusive), ISO 8601; UTC without a zone.")]
Until = Annotated[datetime | None, Query(description="Before this instant (exclusive), ISO 8601; UTC without a zone.")]


def run_filter(
    status: Annotated[list[RunStatus] | None, Query(description="Only runs in these states (repeatable).")] = None,
    pipeline_id: Annotated[list[uuid.UUID] | None, Query(description="Only these pipelines' runs.")] = None,
    connection_id: Annotated[list[uuid.UUID] | None, Query(description="Only runs of these connections.")] = None,
    trigger: Annotated[list[Trigger] | None, Query(description=f"Only runs triggered so: {', '.join(TRIGGERS)}.")]
    = None,
    q: Annotated[str | None, Query(max_length=128, description="Text in the pipeline's name (any case).")] = None,
    scheduled_after: Since = None,
    scheduled_before: Until = None,
    started_after: Since = None,
    started_before: Until = None,
    finished_after: Since = None,
    finished_before: Until = None,
) -> query.RunFilter:
    return query.RunFilter(
        statuses=status or (), pipeline_ids=pipeline_id or (), connection_ids=connection_id or (),
        triggers=trigger or (), text=q or None,
        ranges={"scheduled_for": (_utc(scheduled_after), _utc(scheduled_before)),
                "started_at": (_utc(started_after), _utc(started_before)),
                "finished_at": (_utc(finished_after), _utc(finished_before))},
    )


def _utc(moment: datetime | None) -> datetime | None:
    # A time without a zone is read as UTC, as everywhere in Tidemark's output.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@router.get("", summary="Runs, filtered and sorted, a page at a time, with totals per status",
            description=READ_API + " The default sort, `newest`, lists runs by the time they were queued, newest "
            "first, and upcoming (`scheduled`) runs after them, the soonest first; `?status=scheduled` lists only "
            "the upcoming ones, in time order.")
async def list_runs(
    rt: Runtime,
    where: Annotated[query.RunFilter, Depends(run_filter)],
    sort: Annotated[query.Sort, Query(description="Order; a `-` sorts that time newest first.")] = "newest",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page.")] = None,
) -> RunPage:
    async with rt.sessions() as session:
        rows, next_cursor = await query.page(session, where, sort, limit, cursor)
        totals = await query.totals(session, where)
    return RunPage(items=[RunOut.model_validate(r) for r in rows], next_cursor=next_cursor, totals=totals)


@router.get("/{run_id}", summary="One run, with its timeline, attempts, streams and error", description=READ_API)
async def get_run(run_id: uuid.UUID, rt: Runtime) -> RunDetail:
    async with rt.sessions() as session:
        detail = await run_detail(session, run_id)
    if detail is None:
        raise NotFoundError(f"run {run_id} is unknown to jobs-svc")
    return detail


@router.get("/{run_id}/logs", summary="The run's worker log, a page at a time; followable while it runs",
            description="Structured records the worker shipped (secrets scrubbed), oldest first. Poll with "
            "`?after=<next_after>` for newer ones, or ask `?follow=true` for server-sent events (one `log` "
            "event per record, an `end` event when the run has ended and every record was sent).",
            response_model=LogPage)
async def get_logs(
    run_id: uuid.UUID,
    rt: Runtime,
    after: Annotated[int | None, Query(ge=-1, description="Only records after this `seq`.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    follow: Annotated[bool, Query(description="Answer with server-sent events until the run ends.")] = False,
) -> LogPage | StreamingResponse:
    async with rt.sessions() as session:
        view = await session.get(RunView, run_id)
        if view is None:
            raise NotFoundError(f"run {run_id} is unknown to jobs-svc")
        records = await logstore.read(session, run_id, after, limit)
    live = not RunStatus(view.status).terminal
    if follow:
        return StreamingResponse(_follow(rt, run_id, after), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})
    return LogPage(items=[LogOut.model_validate(r) for r in records],
                   next_after=records[-1].seq if records else after, live=live, dropped=view.logs_dropped)


async def _follow(rt: Runtime, run_id: uuid.UUID, after: int | None) -> AsyncIterator[str]:
    while True:
        async with rt.sessions() as session:
            status = await session.scalar(sa.select(RunView.status).where(RunView.run_id == run_id))
            records = await logstore.read(session, run_id, after, 500)
        for record in records:
            after = record.seq
            yield f"event: log\nid: {record.seq}\ndata: {LogOut.model_validate(record).model_dump_json()}\n\n"
        if not records and (status is None or RunStatus(status).terminal):
            yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
            return
        if not records:
            await asyncio.sleep(1.0)
