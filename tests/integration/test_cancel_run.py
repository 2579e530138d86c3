"""Cancel a real worker in the middle of a full refresh of a table that already has rows: the worker
stops on SIGTERM without committing, the run ends ``cancelled``, and the Iceberg table keeps its
snapshot and rows.

ingest-svc runs in-process (MemoryBus, SQLite) and starts the real worker subprocess; the source is
PostgreSQL, slowed down by a view that sleeps on every row, so the run is reliably mid-read when the
cancel arrives; a stand-in serves connector-svc's internal config route."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.fixtures.connector_stand_in import serving_connection
from tests.fixtures.slow_source import add_rows, slow_items
from tests.fixtures.watched_bus import WatchedBus
from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.events import (
    DestinationSpec,
    Envelope,
    EventPayload,
    PipelineSpec,
    RunCancelRequested,
    RunFinished,
    RunProgress,
    RunRequested,
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
from tidemark_testing.postgres import create_database, drop_database

pytestmark = pytest.mark.integration

TOKEN = "it-token"
INTERNAL = "it-internal"
CONNECTION_ID = new_id()
TABLE = "cancel.slow_items"
GRACE = 20.0


@pytest.fixture(scope="module")
def pg(pg_admin_dsn: str) -> Iterator[dict[str, Any]]:
    url = create_database(pg_admin_dsn, "tidemark_cancel")
    try:
        yield slow_items(url)
    finally:
        drop_database(pg_admin_dsn, url)


@pytest.fixture
def connector_url(pg: dict[str, Any]) -> Iterator[str]:
    with serving_connection(CONNECTION_ID, "postgres", pg["config"], INTERNAL) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, connector_url: str) -> IngestSettings:
    return IngestSettings(
        platform=PlatformSettings(home=tmp_path, internal_token=SecretStr(INTERNAL)),
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/ingest.db"),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        bus="memory", connector_url=connector_url, outbox_poll_seconds=0.1,
        heartbeat_seconds=0.5, heartbeat_timeout_seconds=60, stop_grace_seconds=GRACE, log_format="text",
    )


@pytest.fixture
async def service(settings: IngestSettings) -> AsyncIterator[tuple[WatchedBus, httpx.AsyncClient]]:
    bus = WatchedBus()
    app = build_app([(DEFINITION, settings)], title="t", bus=bus, migrate=True)
    async with running(app, TOKEN) as client:
        yield bus, client


def events(bus: MemoryBus, kind: type[EventPayload], run_id: uuid.UUID) -> list[Envelope]:
    return [e for e in bus.published[Topic.RUNS] if e.type == kind.event_type and e.subject == str(run_id)]


async def first(bus: WatchedBus, kind: type[EventPayload], run_id: uuid.UUID) -> Envelope:
    await bus.until(lambda: bool(events(bus, kind, run_id)))
    return events(bus, kind, run_id)[0]


def full_refresh(pipeline_id: uuid.UUID) -> RunRequested:
    return RunRequested(
        run_id=new_id(), trigger="manual",
        pipeline=PipelineSpec(pipeline_id=pipeline_id, name="slow", connection_id=CONNECTION_ID,
                              streams=[StreamSpec(name="public.slow_items")],
                              destination=DestinationSpec(namespace="cancel")),
    )


def table_now(settings: IngestSettings) -> tuple[int | None, list[int]]:
    table = open_catalog(settings.lakehouse).load_table(TABLE)
    snapshot = table.current_snapshot()
    ids = sorted(table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist())
    return (snapshot.snapshot_id if snapshot else None), ids


async def test_cancelling_a_running_full_refresh_leaves_the_table_as_it_was(
    pg: dict[str, Any], service: tuple[MemoryBus, httpx.AsyncClient], settings: IngestSettings
) -> None:
    bus, client = service
    pipeline_id = new_id()
    add_rows(pg["conninfo"], 1, 1000, delay=0)

    initial = full_refresh(pipeline_id)
    await bus.publish(Topic.RUNS, Envelope.wrap(initial, source="orchestrator-svc"))
    async with asyncio.timeout(90):
        loaded = (await first(bus, RunFinished, initial.run_id)).payload_as(RunFinished)
    assert loaded.status is RunStatus.SUCCEEDED, loaded.error
    before = await asyncio.to_thread(table_now, settings)
    assert before[1] == list(range(1, 1001))

    # 20,000 more rows at 2 ms each: the second run would take 40 s.
    add_rows(pg["conninfo"], 1001, 21_000, delay=0.002)
    second = full_refresh(pipeline_id)
    await bus.publish(Topic.RUNS, Envelope.wrap(second, source="orchestrator-svc"))
    # Reading for real: the heartbeat reported rows read.
    async with asyncio.timeout(60):
        await bus.until(lambda: any(e.payload_as(RunProgress).rows_read > 0
                                    for e in events(bus, RunProgress, second.run_id)))

    asked = time.monotonic()
    await bus.publish(Topic.RUNS, Envelope.wrap(RunCancelRequested(run_id=second.run_id, pipeline_id=pipeline_id),
                                                source="orchestrator-svc"))
    async with asyncio.timeout(GRACE + 30):
        ended = (await first(bus, RunFinished, second.run_id)).payload_as(RunFinished)
    # The worker stopped by itself on SIGTERM, long before the grace period would have killed it.
    assert time.monotonic() - asked < GRACE / 2
    assert ended.status is RunStatus.CANCELLED
    assert ended.error is not None
    assert ended.error.message == "cancelled by user"
    # Only the worker writes stream stats: the interrupted stream says it committed nothing.
    [stream] = ended.streams
    assert stream.status == "failed"
    assert stream.snapshot_id is None
    assert stream.error is not None
    assert "nothing of it was committed" in stream.error.message

    assert await asyncio.to_thread(table_now, settings) == before, "a cancelled run must not commit"
    worker = (await client.get(f"/v1/workers/{second.run_id}")).json()
    assert (worker["status"], worker["error"]) == ("cancelled", "cancelled by user")
    # Only one ending was announced.
    await asyncio.sleep(0.5)
    assert len(events(bus, RunFinished, second.run_id)) == 1
