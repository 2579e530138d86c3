"""A maintenance run through ingest-svc: run.requested with `maintenance` set makes the real worker
subprocess compact the pipeline's tables instead of loading them, and run.finished says what it did."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from tests.fixtures.watched_bus import WatchedBus
from tidemark.api.app import build_app
from tidemark.events import (
    DestinationSpec,
    Envelope,
    PipelineSpec,
    RunFinished,
    RunRequested,
    RunStatus,
    StreamSpec,
    SyncMode,
    Topic,
)
from tidemark.events.contracts import MaintenanceRequest
from tidemark.ids import new_id
from tidemark.lakehouse import WriteRequest, close_catalog, open_catalog, read_state, write_stream
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_ingest.app import DEFINITION
from tidemark_ingest.settings import IngestSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.unit
TOKEN = "unit-token"
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("at", pa.int64())])


@pytest.fixture
def settings(tmp_path: Path) -> IngestSettings:
    return IngestSettings(platform=PlatformSettings(home=tmp_path, internal_token=SecretStr("internal")),
                          database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/ingest.db"),
                          auth=AuthSettings(tokens=[SecretStr(TOKEN)]), bus="memory", outbox_poll_seconds=0.1,
                          heartbeat_seconds=0.5, heartbeat_timeout_seconds=60, log_format="text")


@pytest.fixture
async def service(settings: IngestSettings) -> AsyncIterator[tuple[WatchedBus, httpx.AsyncClient]]:
    bus = WatchedBus()
    app = build_app([(DEFINITION, settings)], title="t", bus=bus, migrate=True)
    async with running(app, TOKEN) as client:
        yield bus, client


def merges(settings: IngestSettings, table: str, runs: int) -> None:
    catalog = open_catalog(settings.lakehouse)
    for run in range(1, runs + 1):
        write_stream(catalog, WriteRequest(table, SCHEMA, SyncMode.INCREMENTAL, ["id"], f"run-{run}", "at"),
                     [pa.record_batch([pa.array([run, run + 1], pa.int64()), pa.array([run] * 2, pa.int64())],
                                      schema=SCHEMA)])
    close_catalog(catalog)


def maintenance_run(maintenance: MaintenanceRequest) -> RunRequested:
    return RunRequested(
        run_id=new_id(),
        pipeline=PipelineSpec(pipeline_id=new_id(), name="shop", connection_id=uuid.uuid4(),
                              streams=[StreamSpec(name="main.orders", sync_mode=SyncMode.INCREMENTAL,
                                                  primary_key=["id"], cursor_field="at"),
                                       StreamSpec(name="main.items")],
                              destination=DestinationSpec(namespace="shop")),
        trigger="maintenance", maintenance=maintenance)


async def finished(bus: WatchedBus, run_id: uuid.UUID) -> RunFinished:
    def ended() -> list[Envelope]:
        return [e for e in bus.published[Topic.RUNS]
                if e.type == RunFinished.event_type and e.subject == str(run_id)]
    async with asyncio.timeout(90):
        await bus.until(lambda: bool(ended()))
    return ended()[0].payload_as(RunFinished)


async def test_a_maintenance_run_compacts_the_pipelines_tables_and_reports_it(
        service: tuple[WatchedBus, httpx.AsyncClient], settings: IngestSettings) -> None:
    bus, client = service
    await asyncio.to_thread(merges, settings, "shop.orders", 5)
    runs_before = metric("tidemark_maintenance_total", via="run", outcome="succeeded")
    rewritten_before = metric("tidemark_maintenance_rewritten_bytes_total")

    dry = maintenance_run(MaintenanceRequest(action="compact", dry_run=True))
    await bus.publish(Topic.RUNS, Envelope.wrap(dry, source="orchestrator-svc"))
    ended = await finished(bus, dry.run_id)
    assert ended.status is RunStatus.SUCCEEDED, ended.error
    orders = next(s for s in ended.streams if s.table == "shop.orders")
    assert orders.maintenance is not None
    assert (orders.maintenance.dry_run, orders.maintenance.files_rewritten) == (True, 5)

    run = maintenance_run(MaintenanceRequest(action="all"))
    await bus.publish(Topic.RUNS, Envelope.wrap(run, source="orchestrator-svc"))
    ended = await finished(bus, run.run_id)
    assert ended.status is RunStatus.SUCCEEDED, ended.error
    orders, items = ended.streams
    assert orders.maintenance is not None
    done = orders.maintenance
    assert (done.data_files_before, done.data_files_after, done.delete_files_before, done.delete_files_after) \
        == (5, 1, 4, 0)
    assert done.actions == ["compact", "expire", "clean"]
    assert done.bytes_rewritten > 0
    assert items.maintenance is not None
    assert items.maintenance.actions == [], "a table not written yet has nothing to maintain"
    catalog = open_catalog(settings.lakehouse)
    assert sorted(catalog.load_table("shop.orders").scan().to_arrow()["id"].to_pylist()) == list(range(1, 7))
    assert read_state(catalog, "shop.orders").cursor_value == 5  # type: ignore[union-attr]
    close_catalog(catalog)
    workers = (await client.get("/v1/workers", params={"status": "succeeded"})).json()
    stats = next(w for w in workers if w["run_id"] == str(run.run_id))["stats"]
    assert stats[0]["maintenance"]["data_files_after"] == 1
    await bus.drain()  # ingest-svc's own consumer counts the endings: two runs of two tables each
    assert metric("tidemark_maintenance_total", via="run", outcome="succeeded") == runs_before + 4
    assert metric("tidemark_maintenance_rewritten_bytes_total") == rewritten_before + done.bytes_rewritten


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
