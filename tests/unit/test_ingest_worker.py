"""ingest-svc end to end in one test process: MemoryBus, SQLite, the real worker subprocess,
and a stand-in for connector-svc's internal config route."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from tests.fixtures.connector_stand_in import serving_connection
from tests.fixtures.watched_bus import WatchedBus
from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.events import (
    DestinationSpec,
    Envelope,
    EventPayload,
    PipelineSpec,
    Reconciliation,
    RunFinished,
    RunRequested,
    RunStarted,
    RunStatus,
    StreamSpec,
    Topic,
)
from tidemark.ids import new_id
from tidemark.lakehouse import open_catalog
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_ingest.app import DEFINITION
from tidemark_ingest.settings import IngestSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.unit

TOKEN = "unit-token"
INTERNAL = "internal-secret"
CONNECTION_ID = uuid.UUID("0191a6f0-0000-7000-8000-000000000001")


@pytest.fixture
def connector_url() -> Iterator[str]:
    with serving_connection(CONNECTION_ID, "sqlite", {"path": "sample:shop"}, INTERNAL) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, connector_url: str) -> IngestSettings:
    return IngestSettings(
        platform=PlatformSettings(home=tmp_path, internal_token=SecretStr(INTERNAL)),
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/ingest.db"),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        bus="memory",
        connector_url=connector_url,
        outbox_poll_seconds=0.1,
        heartbeat_seconds=0.5,
        heartbeat_timeout_seconds=60,
        log_format="text",
    )


@pytest.fixture
async def service(settings: IngestSettings) -> AsyncIterator[tuple[WatchedBus, httpx.AsyncClient]]:
    bus = WatchedBus()
    app = build_app([(DEFINITION, settings)], title="t", bus=bus, migrate=True)
    async with running(app, TOKEN) as client:
        yield bus, client


def request(connection_id: uuid.UUID = CONNECTION_ID, stream: str = "main.orders") -> RunRequested:
    return RunRequested(
        run_id=new_id(),
        pipeline=PipelineSpec(
            pipeline_id=new_id(), name="shop-orders", connection_id=connection_id,
            streams=[StreamSpec(name=stream)], destination=DestinationSpec(namespace="shop"),
        ),
        trigger="manual",
    )


def events(bus: MemoryBus, kind: type[EventPayload], run_id: uuid.UUID) -> list[Envelope]:
    return [e for e in bus.published[Topic.RUNS] if e.type == kind.event_type and e.subject == str(run_id)]


async def wait_finished(bus: WatchedBus, run_id: uuid.UUID) -> RunFinished:
    async with asyncio.timeout(90):
        await bus.until(lambda: bool(events(bus, RunFinished, run_id)))
    await bus.drain()
    return events(bus, RunFinished, run_id)[0].payload_as(RunFinished)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_run_loads_the_sample_orders_into_iceberg(
    service: tuple[WatchedBus, httpx.AsyncClient], settings: IngestSettings
) -> None:
    bus, client = service
    succeeded_before = _metric("tidemark_worker_runs_total", outcome="succeeded")
    rows_before = _metric("tidemark_rows_written_total")
    bytes_before = _metric("tidemark_bytes_written_total")
    run = request()
    await bus.publish(Topic.RUNS, Envelope.wrap(run, source="orchestrator-svc"))

    finished = await wait_finished(bus, run.run_id)
    assert finished.status is RunStatus.SUCCEEDED, finished.error
    assert finished.rows_written == 1000
    [stream] = finished.streams
    assert stream.table == "shop.orders"
    assert stream.rows_read == 1000
    assert stream.snapshot_id is not None
    # The run's event carries the counts reconciled before the commit, the source's own one included.
    assert stream.reconciliation == Reconciliation(rows_read=1000, rows_committed=1000, source_rows=1000,
                                                   table_rows=1000, ok=True)
    [started] = events(bus, RunStarted, run.run_id)
    assert started.payload_as(RunStarted).launcher == "local"

    table = await asyncio.to_thread(lambda: open_catalog(settings.lakehouse).load_table("shop.orders"))
    assert table.scan().count() == 1000
    assert table.current_snapshot().summary["tidemark.run-id"] == str(run.run_id)
    # A full refresh carries the source's own key (the shop's orders.id) as the identifier field.
    assert table.schema().identifier_field_ids == [table.schema().find_field("id").field_id]

    listed = await client.get("/v1/workers", params={"status": "succeeded"})
    assert listed.status_code == 200, listed.text
    [worker] = listed.json()
    assert worker["run_id"] == str(run.run_id)
    assert worker["stats"][0]["rows_written"] == 1000
    assert worker["heartbeat_at"] is not None
    assert _metric("tidemark_worker_runs_total", outcome="succeeded") == succeeded_before + 1
    assert _metric("tidemark_rows_written_total") == rows_before + 1000
    assert stream.bytes_written > 0
    assert _metric("tidemark_bytes_written_total") == bytes_before + stream.bytes_written

    # The same run requested again (a retried publish) launches nothing new.
    await bus.publish(Topic.RUNS, Envelope.wrap(run, source="orchestrator-svc"))
    await bus.drain()
    await asyncio.sleep(0.5)
    assert len(events(bus, RunStarted, run.run_id)) == 1
    assert (await client.get(f"/v1/workers/{run.run_id}")).json()["status"] == "succeeded"


async def test_unknown_connection_fails_the_run_with_a_clear_message(
    service: tuple[WatchedBus, httpx.AsyncClient],
) -> None:
    bus, client = service
    run = request(connection_id=uuid.UUID("0191a6f0-0000-7000-8000-0000000000ff"))
    await bus.publish(Topic.RUNS, Envelope.wrap(run, source="orchestrator-svc"))

    finished = await wait_finished(bus, run.run_id)
    assert finished.status is RunStatus.FAILED
    assert finished.error is not None
    assert finished.error.kind == "config"
    assert "does not exist" in finished.error.message
    assert str(run.pipeline.connection_id) in finished.error.message
    worker = (await client.get(f"/v1/workers/{run.run_id}")).json()
    assert worker["status"] == "failed"
    assert "does not exist" in worker["error"]
    missing = await client.get(f"/v1/workers/{new_id()}")
    assert missing.status_code == 404


async def test_two_streams_of_one_table_never_overwrite_each_other(
    service: tuple[WatchedBus, httpx.AsyncClient], settings: IngestSettings
) -> None:
    """A pipeline saved before collisions were refused: the second stream is not loaded, and says why."""
    bus, _ = service
    base = request()
    run = base.model_copy(update={"pipeline": base.pipeline.model_copy(update={
        "streams": [StreamSpec(name="main.orders"), StreamSpec(name="public.orders")]})})
    await bus.publish(Topic.RUNS, Envelope.wrap(run, source="orchestrator-svc"))

    finished = await wait_finished(bus, run.run_id)
    assert finished.status is RunStatus.PARTIALLY_SUCCEEDED
    first, second = finished.streams
    assert (first.status, first.rows_written) == ("succeeded", 1000)
    assert second.status == "failed"
    assert second.error is not None
    assert second.error.kind == "config"
    assert "'main.orders' and 'public.orders' both map to table shop.orders" in second.error.message
    table = await asyncio.to_thread(lambda: open_catalog(settings.lakehouse).load_table("shop.orders"))
    assert table.scan().count() == 1000
    assert table.properties["tidemark.source-stream"] == "main.orders"
    assert table.properties["tidemark.pipeline-name"] == "shop-orders"


async def test_a_workers_ending_is_published_when_it_exits_not_at_the_relays_next_poll(
    settings: IngestSettings,
) -> None:
    # The worker writes run.finished into ingest-svc's outbox from its own process, which cannot wake
    # the service's relay; the service wakes it when the worker exits. With a poll this long, waiting
    # for the poll would miss the deadline below.
    slow_poll = settings.model_copy(update={"outbox_poll_seconds": 300.0})
    bus = WatchedBus()
    app = build_app([(DEFINITION, slow_poll)], title="t", bus=bus, migrate=True)
    async with running(app, TOKEN):
        run = request()
        await bus.publish(Topic.RUNS, Envelope.wrap(run, source="orchestrator-svc"))
        async with asyncio.timeout(120):  # the worker's start, on a loaded machine; far below 300 s
            await bus.until(lambda: bool(events(bus, RunFinished, run.run_id)))
    finished = events(bus, RunFinished, run.run_id)[0].payload_as(RunFinished)
    assert finished.status is RunStatus.SUCCEEDED, finished.error
