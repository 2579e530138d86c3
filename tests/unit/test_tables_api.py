"""/v1/tables over real Iceberg tables written through tidemark.lakehouse (SQLite catalog, local warehouse)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from pydantic import SecretStr
from pyiceberg.catalog import Catalog

from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.events import DestinationSpec, PipelineSpec, RunRequested, StreamSpec, StreamStats, SyncMode
from tidemark.lakehouse import WriteRequest, close_catalog, open_catalog, write_stream
from tidemark.lakehouse.state import CONNECTION_ID, PIPELINE_ID, PIPELINE_NAME, SOURCE_STREAM
from tidemark.lakehouse.tables import json_safe
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_ingest import repository
from tidemark_ingest.app import DEFINITION
from tidemark_ingest.settings import IngestSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.unit
TOKEN = "unit-token"
PROBLEM = "application/problem+json"

SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("amount", pa.decimal128(10, 2)),
    pa.field("updated_at", pa.timestamp("us", tz="UTC")),
    pa.field("blob", pa.binary()),
    pa.field("ratio", pa.float64()),
])


def batch(ids: list[int], name: str) -> pa.RecordBatch:
    n = len(ids)
    return pa.record_batch([
        pa.array(ids, pa.int64()),
        pa.array([f"{name}-{i}" for i in ids]),
        pa.array([Decimal(f"{i}.25") for i in ids], pa.decimal128(10, 2)),
        pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=i) for i in ids],
                 pa.timestamp("us", tz="UTC")),
        pa.array([b"\x00\xff"] * n, pa.binary()),
        pa.array([float("nan")] * n, pa.float64()),
    ], schema=SCHEMA)


@pytest.fixture
def settings(tmp_path: Path) -> IngestSettings:
    return IngestSettings(
        platform=PlatformSettings(home=tmp_path),
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/ingest.db"),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        bus="memory",
    )


@pytest.fixture
def catalog(settings: IngestSettings) -> Iterator[Catalog]:
    catalog = open_catalog(settings.lakehouse)
    yield catalog
    close_catalog(catalog)


@pytest.fixture
async def client(settings: IngestSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app([(DEFINITION, settings)], title="t", bus=MemoryBus(), migrate=True)
    async with running(app, TOKEN) as c:
        yield c


def write(catalog: Catalog, identifier: str, ids: list[int], mode: SyncMode, run_id: str, name: str = "v1") -> None:
    write_stream(catalog, WriteRequest(identifier, SCHEMA, mode, primary_key=["id"], run_id=run_id,
                                       cursor_field="updated_at"), [batch(ids, name)])


def remove_metadata(catalog: Catalog, identifier: str) -> None:
    Path(catalog.load_table(identifier).metadata_location.removeprefix("file://")).unlink()


async def test_list_and_show_a_table_with_snapshots_rows_and_cursor(
    client: httpx.AsyncClient, catalog: Catalog
) -> None:
    write(catalog, "shop.orders", list(range(100)), SyncMode.FULL_REFRESH, "run-1")
    # Merge-on-read upsert: 10 rows replaced (position deletes), 10 new.
    write(catalog, "shop.orders", list(range(90, 110)), SyncMode.INCREMENTAL, "run-2", "v2")
    write(catalog, "other.things", [1, 2], SyncMode.FULL_REFRESH, "run-3")

    listed = await client.get("/v1/tables")
    assert listed.status_code == 200, listed.text
    by_id = {t["identifier"]: t for t in listed.json()}
    assert sorted(by_id) == ["other.things", "shop.orders"]
    orders = by_id["shop.orders"]
    assert (orders["namespace"], orders["name"], orders["row_count"]) == ("shop", "orders", 110)
    assert orders["current_snapshot_id"] == catalog.load_table("shop.orders").current_snapshot().snapshot_id
    assert orders["last_run_id"] == "run-2"
    assert orders["source"] is None  # no properties and no run this service knows of

    shown = await client.get("/v1/tables/shop.orders")
    assert shown.status_code == 200, shown.text
    detail = shown.json()
    columns = {c["name"]: c for c in detail["columns"]}
    assert list(columns) == ["id", "name", "amount", "updated_at", "blob", "ratio"]
    assert columns["amount"]["type"] == "decimal(10, 2)"
    assert columns["updated_at"]["type"] == "timestamptz"
    assert detail["row_count"] == 110
    assert detail["metadata_location"] == catalog.load_table("shop.orders").metadata_location
    first, second = detail["snapshots"][1], detail["snapshots"][0]  # newest first
    assert (second["run_id"], second["operation"], second["added_rows"], second["deleted_rows"]) == (
        "run-2", "overwrite", 20, 10)
    assert (first["run_id"], first["added_rows"], first["total_rows"]) == ("run-1", 100, 100)
    assert second["parent_id"] == first["snapshot_id"]
    assert detail["cursor"] == {"field": "updated_at", "value": "2026-01-05T13:00:00+00:00"}  # hour 109


async def test_full_refresh_counts_rows_deleted_through_earlier_deletes_once(
    client: httpx.AsyncClient, catalog: Catalog
) -> None:
    write(catalog, "shop.orders", list(range(100)), SyncMode.FULL_REFRESH, "run-1")
    write(catalog, "shop.orders", list(range(90, 110)), SyncMode.INCREMENTAL, "run-2", "v2")
    write(catalog, "shop.orders", [1, 2, 3], SyncMode.FULL_REFRESH, "run-3", "v3")
    newest = (await client.get("/v1/tables/shop.orders")).json()["snapshots"][0]
    assert (newest["run_id"], newest["added_rows"], newest["deleted_rows"], newest["total_rows"]) == (
        "run-3", 3, 110, 3)


async def test_preview_returns_live_rows_as_exact_json(client: httpx.AsyncClient, catalog: Catalog) -> None:
    write(catalog, "shop.orders", list(range(30)), SyncMode.FULL_REFRESH, "run-1")
    write(catalog, "shop.orders", [0, 1, 2], SyncMode.INCREMENTAL, "run-2", "v2")
    response = await client.get("/v1/tables/shop.orders/preview", params={"limit": 1000})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == ["id", "name", "amount", "updated_at", "blob", "ratio"]
    rows = {r["id"]: r for r in body["rows"]}
    assert len(body["rows"]) == 30  # the three old versions are deleted, not shown twice
    assert rows[1] == {"id": 1, "name": "v2-1", "amount": "1.25", "updated_at": "2026-01-01T01:00:00+00:00",
                       "blob": "AP8=", "ratio": "NaN"}
    limited = await client.get("/v1/tables/shop.orders/preview", params={"limit": 5})
    assert len(limited.json()["rows"]) == 5


async def test_source_comes_from_table_properties(client: httpx.AsyncClient, catalog: Catalog) -> None:
    write(catalog, "shop.orders", [1], SyncMode.FULL_REFRESH, "run-1")
    pipeline_id, connection_id = uuid.uuid4(), uuid.uuid4()
    with catalog.load_table("shop.orders").transaction() as txn:
        txn.set_properties({SOURCE_STREAM: "main.orders", PIPELINE_ID: str(pipeline_id),
                            PIPELINE_NAME: "shop", CONNECTION_ID: str(connection_id)})
    source = (await client.get("/v1/tables/shop.orders")).json()["source"]
    assert source == {"pipeline_id": str(pipeline_id), "pipeline_name": "shop",
                      "connection_id": str(connection_id), "stream": "main.orders"}
    listed = (await client.get("/v1/tables")).json()
    assert listed[0]["source"] == source


async def test_source_of_an_older_table_comes_from_the_run_that_wrote_it(
    client: httpx.AsyncClient, catalog: Catalog, settings: IngestSettings
) -> None:
    from tidemark.service import ServiceRuntime

    event = RunRequested(
        run_id=uuid.uuid4(),
        pipeline=PipelineSpec(pipeline_id=uuid.uuid4(), name="shop-pipe", connection_id=uuid.uuid4(),
                              streams=[StreamSpec(name="main.orders")], destination=DestinationSpec(namespace="shop")),
        trigger="manual",
    )
    rt = ServiceRuntime(DEFINITION, settings, bus=MemoryBus())
    try:
        async with rt.transaction() as session:
            await repository.add_worker_run(session, event, "local")
            run = await repository.require_worker_run(session, event.run_id)
            run.stats = [StreamStats(stream="main.orders", table="shop.orders", status="succeeded").model_dump(
                mode="json")]
    finally:
        await rt.engine.dispose()
    write(catalog, "shop.orders", [1], SyncMode.FULL_REFRESH, str(event.run_id))

    source = (await client.get("/v1/tables/shop.orders")).json()["source"]
    assert source == {"pipeline_id": str(event.pipeline.pipeline_id), "pipeline_name": "shop-pipe",
                      "connection_id": str(event.pipeline.connection_id), "stream": "main.orders"}


async def test_unknown_table_is_404_and_bad_identifier_or_limit_is_422(
    client: httpx.AsyncClient, catalog: Catalog
) -> None:
    for path in ("/v1/tables/shop.nothing", "/v1/tables/nowhere.nothing/preview"):
        missing = await client.get(path)
        assert missing.status_code == 404, missing.text
        assert missing.headers["content-type"] == PROBLEM
        assert "shop.nothing" in missing.json()["detail"] or "nowhere.nothing" in missing.json()["detail"]
    for bad in ("/v1/tables/nodot", "/v1/tables/a..b", "/v1/tables/.a", "/v1/tables/%20.0", "/v1/tables/a.%20"):
        response = await client.get(bad)
        assert response.status_code == 422, (bad, response.text)
        assert [e["field"] for e in response.json()["errors"]] == ["table"]
    write(catalog, "shop.orders", [1], SyncMode.FULL_REFRESH, "run-1")
    for limit in (0, 1001):
        response = await client.get("/v1/tables/shop.orders/preview", params={"limit": limit})
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["limit"]


async def test_tables_need_the_bearer_token(settings: IngestSettings) -> None:
    app = build_app([(DEFINITION, settings)], title="t", bus=MemoryBus(), migrate=True)
    async with running(app) as anonymous:
        assert (await anonymous.get("/v1/tables")).status_code == 401
        assert (await anonymous.get("/v1/tables/shop.orders")).status_code == 401


async def test_empty_catalog_lists_no_tables(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/tables")
    assert response.status_code == 200
    assert response.json() == []


def test_json_safe_keeps_values_exact() -> None:
    assert json_safe(Decimal("12345678901234567890.123")) == "12345678901234567890.123"
    assert json_safe(float("-inf")) == "-Infinity"
    assert json_safe(dt.date(2026, 2, 3)) == "2026-02-03"
    assert json_safe(dt.time(23, 59, 1)) == "23:59:01"
    assert json_safe([("k", b"\x01")]) == [["k", "AQ=="]]
    assert json_safe({"a": {"b": dt.timedelta(seconds=90)}}) == {"a": {"b": 90.0}}


async def test_nested_namespaces_are_listed_and_shown(client: httpx.AsyncClient, catalog: Catalog) -> None:
    write(catalog, "lake.raw.orders", [1, 2], SyncMode.FULL_REFRESH, "run-1")
    write(catalog, "lake.top", [1], SyncMode.FULL_REFRESH, "run-2")
    listed = [(t["identifier"], t["namespace"], t["name"]) for t in (await client.get("/v1/tables")).json()]
    assert listed == [("lake.raw.orders", "lake.raw", "orders"), ("lake.top", "lake", "top")]
    shown = await client.get("/v1/tables/lake.raw.orders")
    assert shown.status_code == 200, shown.text
    assert shown.json()["row_count"] == 2


async def test_a_table_whose_metadata_is_gone_does_not_hide_the_others(
    client: httpx.AsyncClient, catalog: Catalog
) -> None:
    write(catalog, "shop.orders", [1], SyncMode.FULL_REFRESH, "run-1")
    write(catalog, "shop.broken", [1], SyncMode.FULL_REFRESH, "run-2")
    remove_metadata(catalog, "shop.broken")
    listed = await client.get("/v1/tables")
    assert listed.status_code == 200, listed.text
    assert [t["identifier"] for t in listed.json()] == ["shop.orders"]
    broken = await client.get("/v1/tables/shop.broken")
    assert broken.status_code == 503  # unreadable right now, not "no such table"
    assert broken.headers["content-type"] == PROBLEM
