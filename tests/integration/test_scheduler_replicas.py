"""Two orchestrators on one PostgreSQL database fire every tick of a per-second schedule exactly once.

Both run their scheduler loop (polling every 20 ms) against the same database, with one clock the
test moves a second at a time; one of them is restarted halfway. Each tick must become exactly one
run, requested once (one ``run.requested`` in the outbox), and none may be skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from tests.fixtures.pipelines import API_TOKEN, orchestrator_settings
from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.events import Envelope, RunFinished, RunRequested, RunStatus, Topic
from tidemark.settings import DatabaseSettings
from tidemark_orchestrator.app import definition
from tidemark_orchestrator.deps import OrchestratorRuntime
from tidemark_orchestrator.models import Run
from tidemark_testing.apps import running

pytestmark = pytest.mark.integration
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
TICKS = 12


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def replica(url: str, home: Path, clock: Clock, bus: MemoryBus) -> FastAPI:
    settings = orchestrator_settings(home).model_copy(update={
        "database": DatabaseSettings(url=url), "scheduler_poll_seconds": 0.02,
    })
    return build_app([(definition(None, clock), settings)], title="orchestrator", bus=bus, migrate=True)


async def run_for(runtime: OrchestratorRuntime, pipeline_id: uuid.UUID, tick: datetime) -> Run:
    """The tick's run once it is admitted (the test's stand-in for ingest-svc picking it up)."""
    for _ in range(500):
        async with runtime.sessions() as session:
            run = (await session.scalars(sa.select(Run).where(
                Run.pipeline_id == pipeline_id, Run.scheduled_for == tick))).first()
        if run is not None and run.admitted_at is not None:  # run.requested is written: ingest-svc may start it
            return run
        await asyncio.sleep(0.02)
    raise AssertionError(f"the tick at {tick} was not admitted")


async def test_each_tick_fires_exactly_once_across_two_replicas_and_a_restart(
    pg_database: Callable[[], str], tmp_path: Path
) -> None:
    url = pg_database()
    clock = Clock(START)
    bus_a, bus_b = MemoryBus(), MemoryBus()
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(running(replica(url, tmp_path, clock, bus_a), API_TOKEN))
        app_b = replica(url, tmp_path, clock, bus_b)
        restart_b = await stack.enter_async_context(contextlib.AsyncExitStack())
        await restart_b.enter_async_context(running(app_b, API_TOKEN))
        runtime = client._transport.app.state.runtimes["orchestrator"]  # type: ignore[attr-defined]

        created = await client.post("/v1/pipelines", params={"validate": "false"}, json={
            "name": "every-second", "connection_id": str(uuid.uuid4()), "streams": [{"name": "s"}],
            "schedule": {"cron": "* * * * * *", "timezone": "Europe/Berlin"},
        })
        assert created.status_code == 201, created.text
        pipeline_id = uuid.UUID(created.json()["id"])

        for second in range(1, TICKS + 1):
            if second == TICKS // 2:  # restart replica B: a new process state on the same database
                await restart_b.aclose()
                await restart_b.enter_async_context(running(replica(url, tmp_path, clock, bus_b), API_TOKEN))
            tick = START + timedelta(seconds=second)
            clock.now = tick
            run = await run_for(runtime, pipeline_id, tick)
            assert run.status == RunStatus.QUEUED
            # The run ends (as ingest-svc would report), so the next tick is not held behind it.
            finished = RunFinished(run_id=run.id, pipeline_id=pipeline_id, status=RunStatus.SUCCEEDED)
            await bus_a.publish(Topic.RUNS, Envelope.wrap(finished, source="ingest-svc"))
            await bus_a.drain()

        await asyncio.sleep(0.1)  # a few more passes of both loops: nothing more may fire
        async with runtime.sessions() as session:
            runs = (await session.scalars(sa.select(Run).where(
                Run.pipeline_id == pipeline_id, Run.scheduled_for <= clock.now).order_by(Run.scheduled_for))).all()
            outbox = runtime.definition.tables.outbox
            envelopes = [Envelope.model_validate_json(e) for e in
                         (await session.execute(sa.select(outbox.c.envelope))).scalars().all()]

    expected = [START + timedelta(seconds=s) for s in range(1, TICKS + 1)]
    assert [r.scheduled_for for r in runs] == expected  # one run per tick, none skipped
    assert {r.status for r in runs} == {RunStatus.SUCCEEDED}
    requested = [e.payload_as(RunRequested) for e in envelopes if e.type == RunRequested.event_type]
    assert sorted(r.scheduled_for for r in requested if r.scheduled_for) == expected  # requested exactly once
    assert {r.run_id for r in requested} == {r.id for r in runs}
