"""jobs-svc folds run events into one row per run, whatever order they arrive in."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.fixtures.events import from_newer_producer
from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.events import (
    DestinationSpec,
    Envelope,
    PartitionField,
    PipelineSpec,
    RunError,
    RunFinished,
    RunRequested,
    RunScheduled,
    RunStarted,
    RunStatus,
    RunUnscheduled,
    StreamSpec,
    StreamStats,
    StreamWarning,
    Topic,
)
from tidemark.settings import AuthSettings, DatabaseSettings
from tidemark_jobs.app import DEFINITION
from tidemark_jobs.settings import JobsSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.unit
TOKEN = "jobs-token"


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, MemoryBus]]:
    bus = MemoryBus()
    settings = JobsSettings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/jobs.db"),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        bus="memory",
    )
    async with running(build_app([(DEFINITION, settings)], title="t", bus=bus, migrate=True), TOKEN) as client:
        yield client, bus


def requested(run_id: uuid.UUID, pipeline_id: uuid.UUID, name: str = "orders") -> RunRequested:
    spec = PipelineSpec(pipeline_id=pipeline_id, name=name, connection_id=uuid.uuid4(),
                        streams=[StreamSpec(name="main.orders")], destination=DestinationSpec())
    return RunRequested(run_id=run_id, pipeline=spec, trigger="manual")


def finished(run_id: uuid.UUID, pipeline_id: uuid.UUID, rows: int) -> RunFinished:
    stats = StreamStats(stream="main.orders", table="tidemark.orders", status="succeeded",
                        rows_read=rows, rows_written=rows, bytes_written=10 * rows,
                        warnings=[StreamWarning(kind="value_as_null", column="shipped", count=2,
                                                message="zero dates are read as NULL")])
    return RunFinished(run_id=run_id, pipeline_id=pipeline_id, status=RunStatus.SUCCEEDED, streams=[stats])


async def deliver(bus: MemoryBus, *payloads: object) -> None:
    for p in payloads:
        await bus.publish(Topic.RUNS, Envelope.wrap(p, source="test"))  # type: ignore[arg-type]
    await bus.drain()


async def test_run_lifecycle_in_order(setup: tuple[httpx.AsyncClient, MemoryBus]) -> None:
    client, bus = setup
    run_id, pipeline_id = uuid.uuid4(), uuid.uuid4()
    await deliver(bus, requested(run_id, pipeline_id))
    assert (await client.get(f"/v1/runs/{run_id}")).json()["status"] == "queued"
    await deliver(bus, RunStarted(run_id=run_id, pipeline_id=pipeline_id, launcher="local", worker_ref="42"))
    assert (await client.get(f"/v1/runs/{run_id}")).json()["status"] == "running"
    await deliver(bus, finished(run_id, pipeline_id, 1000))
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "succeeded"
    assert run["rows_written"] == 1000
    assert run["pipeline_name"] == "orders"
    assert run["streams"][0]["table"] == "tidemark.orders"
    # The run carries what its values went through.
    assert run["streams"][0]["warnings"] == [
        {"kind": "value_as_null", "column": "shipped", "count": 2, "message": "zero dates are read as NULL"}
    ]


async def test_late_events_never_move_a_run_backwards(setup: tuple[httpx.AsyncClient, MemoryBus]) -> None:
    client, bus = setup
    run_id, pipeline_id = uuid.uuid4(), uuid.uuid4()
    await deliver(
        bus,
        finished(run_id, pipeline_id, 7),
        RunStarted(run_id=run_id, pipeline_id=pipeline_id, launcher="local", worker_ref="1"),
        requested(run_id, pipeline_id, name="late"),
    )
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "succeeded"
    assert run["rows_written"] == 7
    assert run["pipeline_name"] == "late"


async def test_filter_by_status(setup: tuple[httpx.AsyncClient, MemoryBus]) -> None:
    client, bus = setup
    ok, bad, pipeline_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    failure = RunFinished(run_id=bad, pipeline_id=pipeline_id, status=RunStatus.FAILED,
                          error=RunError(message="source unreachable", kind="transient"))
    await deliver(bus, requested(ok, pipeline_id), requested(bad, pipeline_id), finished(ok, pipeline_id, 1), failure)
    failed = (await client.get("/v1/runs", params={"status": "failed"})).json()["items"]
    assert [r["run_id"] for r in failed] == [str(bad)]
    assert failed[0]["error"] == "source unreachable"
    both = (await client.get("/v1/runs", params={"status": ["failed", "succeeded"]})).json()["items"]
    assert {r["run_id"] for r in both} == {str(ok), str(bad)}
    bogus = await client.get("/v1/runs", params={"status": "exploded"})
    assert bogus.status_code == 422
    assert bogus.json()["errors"][0]["field"] == "status.0"
    await asyncio.sleep(0)


async def test_an_upcoming_run_is_scheduled_then_queued_with_its_tick(
    setup: tuple[httpx.AsyncClient, MemoryBus],
) -> None:
    client, bus = setup
    run_id, pipeline_id = uuid.uuid4(), uuid.uuid4()
    tick = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)
    await deliver(bus, RunScheduled(run_id=run_id, pipeline_id=pipeline_id, pipeline_name="orders", scheduled_for=tick))
    earlier = uuid.uuid4()
    await deliver(bus, RunScheduled(run_id=earlier, pipeline_id=pipeline_id, pipeline_name="orders",
                                    scheduled_for=tick - timedelta(hours=1)))
    upcoming = (await client.get("/v1/runs", params={"status": "scheduled"})).json()["items"]
    assert [(r["run_id"], r["scheduled_for"], r["trigger"]) for r in upcoming] == [  # soonest first
        (str(earlier), "2026-12-08T00:30:00Z", "schedule"), (str(run_id), "2026-12-08T01:30:00Z", "schedule")]
    due = requested(run_id, pipeline_id).model_copy(update={"trigger": "schedule", "scheduled_for": tick})
    await deliver(bus, due)
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert (run["status"], run["scheduled_for"]) == ("queued", "2026-12-08T01:30:00Z")


async def test_a_withdrawn_upcoming_run_disappears_but_a_requested_one_stays(
    setup: tuple[httpx.AsyncClient, MemoryBus],
) -> None:
    client, bus = setup
    withdrawn, fired, pipeline_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    tick = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)
    await deliver(
        bus,
        RunScheduled(run_id=withdrawn, pipeline_id=pipeline_id, pipeline_name="orders", scheduled_for=tick),
        RunScheduled(run_id=fired, pipeline_id=pipeline_id, pipeline_name="orders", scheduled_for=tick),
        requested(fired, pipeline_id),
        RunUnscheduled(run_id=withdrawn, pipeline_id=pipeline_id, scheduled_for=tick, reason="pipeline paused"),
        RunUnscheduled(run_id=fired, pipeline_id=pipeline_id, scheduled_for=tick, reason="pipeline paused"),
    )
    assert (await client.get(f"/v1/runs/{withdrawn}")).status_code == 404
    assert (await client.get(f"/v1/runs/{fired}")).json()["status"] == "queued"


async def test_unknown_run_is_a_404_problem(setup: tuple[httpx.AsyncClient, MemoryBus]) -> None:
    client, _ = setup
    response = await client.get(f"/v1/runs/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_events_from_a_newer_producer_with_fields_added_are_applied(
    setup: tuple[httpx.AsyncClient, MemoryBus],
) -> None:
    # A newer orchestrator and ingest added optional fields at every level; this jobs-svc knows none of them.
    client, bus = setup
    run_id, pipeline_id = uuid.uuid4(), uuid.uuid4()
    spec = PipelineSpec(pipeline_id=pipeline_id, name="newer", connection_id=uuid.uuid4(),
                        streams=[StreamSpec(name="main.orders", partition=[PartitionField(column="created_at")])],
                        destination=DestinationSpec())
    request = from_newer_producer(RunRequested(run_id=run_id, pipeline=spec, trigger="manual"), {
        "priority": "high",
        "pipeline.owner": "data-team",
        "pipeline.streams.0.sample_rows": 10,
        "pipeline.streams.0.partition.0.timezone": "UTC",
        "pipeline.destination.format_version": 3,
    }, headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    failed = RunFinished(run_id=run_id, pipeline_id=pipeline_id, status=RunStatus.FAILED,
                         streams=finished(run_id, pipeline_id, 7).streams,
                         error=RunError(message="source went away", kind="transient", stream="main.orders"))
    finish = from_newer_producer(failed, {
        "cost_units": 1.5,
        "streams.0.files_written": 2,
        "streams.0.warnings.0.sample": "0000-00-00",
        "error.retry_after_seconds": 30,
    })
    for envelope in (request, finish):
        await bus.publish(Topic.RUNS, envelope)
    await bus.drain()

    run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert (run["pipeline_name"], run["status"], run["error"]) == ("newer", "failed", "source went away")
    assert run["rows_written"] == 7
    [stream] = run["streams"]
    assert "files_written" not in stream
    assert stream["warnings"][0]["column"] == "shipped"
