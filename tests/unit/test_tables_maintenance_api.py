"""/v1/tables/{table}/health and /v1/tables/{table}/maintenance over real Iceberg tables (SQLite catalog)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from pyiceberg.catalog import Catalog

from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.events import DestinationSpec, PipelineSpec, RunRequested, RunStatus, StreamSpec, SyncMode
from tidemark.lakehouse import WriteRequest, close_catalog, open_catalog, read_state, write_stream
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_ingest.app import DEFINITION
from tidemark_ingest.models import WorkerRun
from tidemark_ingest.repository import add_worker_run
from tidemark_ingest.settings import IngestSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.unit
TOKEN = "unit-token"
TABLE = "shop.orders"
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("at", pa.int64())])


@pytest.fixture
def settings(tmp_path: Path) -> IngestSettings:
    return IngestSettings(platform=PlatformSettings(home=tmp_path),
                          database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/ingest.db"),
                          auth=AuthSettings(tokens=[SecretStr(TOKEN)]), bus="memory")


@pytest.fixture
def catalog(settings: IngestSettings) -> Iterator[Catalog]:
    catalog = open_catalog(settings.lakehouse)
    for run in range(1, 7):
        write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, ["id"], f"run-{run}", "at"),
                     [pa.record_batch([pa.array([run, run + 1], pa.int64()), pa.array([run, run], pa.int64())],
                                      schema=SCHEMA)])
    yield catalog
    close_catalog(catalog)


@pytest.fixture
async def client(settings: IngestSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app([(DEFINITION, settings)], title="t", bus=MemoryBus(), migrate=True)
    async with running(app, TOKEN) as c:
        yield c


async def test_health_then_a_dry_run_then_compaction(client: httpx.AsyncClient, catalog: Catalog) -> None:
    health = await client.get(f"/v1/tables/{TABLE}/health")
    assert health.status_code == 200, health.text
    before = health.json()
    assert (before["data_files"], before["delete_files"], before["snapshots"]) == (6, 5, 6)
    assert before["last_compaction"] is None
    assert before["average_file_bytes"] == before["data_bytes"] // 6

    dry = await client.post(f"/v1/tables/{TABLE}/maintenance", json={"action": "compact", "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert (dry.json()["files_rewritten"], dry.json()["delete_files_folded"]) == (6, 5)
    assert (await client.get(f"/v1/tables/{TABLE}/health")).json()["data_files"] == 6

    done = await client.post(f"/v1/tables/{TABLE}/maintenance", json={"action": "compact"})
    assert done.status_code == 200, done.text
    report = done.json()
    assert report["actions"] == ["compact"]
    assert (report["data_files_before"], report["data_files_after"], report["delete_files_after"]) == (6, 1, 0)
    after = (await client.get(f"/v1/tables/{TABLE}/health")).json()
    assert (after["data_files"], after["delete_files"]) == (1, 0)
    assert after["last_compaction"] is not None
    assert sorted(catalog.load_table(TABLE).scan().to_arrow()["id"].to_pylist()) == list(range(1, 8))
    assert read_state(catalog, TABLE).cursor_value == 6  # type: ignore[union-attr]


async def test_all_actions_with_defaults_keep_recent_snapshots(client: httpx.AsyncClient, catalog: Catalog) -> None:
    response = await client.post(f"/v1/tables/{TABLE}/maintenance")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["actions"] == ["compact", "expire", "clean"]
    assert report["snapshots_expired"] == 0, "everything is younger than 7 days"
    assert report["orphan_files"] == [], "nothing is older than the 3-day window"


async def test_bad_requests_name_the_field(client: httpx.AsyncClient, catalog: Catalog) -> None:
    missing = await client.get("/v1/tables/shop.nothing/health")
    assert missing.status_code == 404, missing.text
    bad = await client.post(f"/v1/tables/{TABLE}/maintenance", json={"action": "vacuum"})
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["action"]
    bad = await client.post(f"/v1/tables/{TABLE}/maintenance", json={"policy": {"keep_snapshots": 0}})
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["policy.keep_snapshots"]
    unknown = await client.post(f"/v1/tables/{TABLE}/maintenance", json={"dryrun": True})
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["dryrun"]


async def test_compaction_is_refused_while_a_run_writes_the_table_and_expiry_is_not(
    settings: IngestSettings, catalog: Catalog
) -> None:
    app = build_app([(DEFINITION, settings)], title="t", bus=MemoryBus(), migrate=True)
    async with running(app, TOKEN) as client:
        rt = app.state.runtimes["ingest"]

        async def holding(stream: str, status: RunStatus) -> uuid.UUID:
            pipeline = PipelineSpec(pipeline_id=uuid.uuid4(), name=f"p-{stream}", connection_id=uuid.uuid4(),
                                    streams=[StreamSpec(name=stream)], destination=DestinationSpec(namespace="shop"))
            request = RunRequested(run_id=uuid.uuid4(), pipeline=pipeline, trigger="manual")
            async with rt.sessions() as session, session.begin():
                assert await add_worker_run(session, request, "local")
                await session.execute(sa.update(WorkerRun).where(WorkerRun.run_id == request.run_id)
                                      .values(status=status.value))
            return request.run_id

        await holding("public.customers", RunStatus.RUNNING)  # another table: no conflict
        done = await holding("public.orders", RunStatus.SUCCEEDED)  # ended: no conflict
        assert done
        dry = await client.post(f"/v1/tables/{TABLE}/maintenance", json={"action": "compact", "dry_run": True})
        assert dry.status_code == 200, dry.text

        writer = await holding("public.orders", RunStatus.RUNNING)
        for action in ("compact", "all"):
            refused = await client.post(f"/v1/tables/{TABLE}/maintenance", json={"action": action})
            assert refused.status_code == 409, refused.text
            assert str(writer) in refused.json()["detail"]
        assert (await client.get(f"/v1/tables/{TABLE}/health")).json()["data_files"] == 6  # nothing rewritten
        # A dry run and expiry are safe beside the run.
        assert (await client.post(f"/v1/tables/{TABLE}/maintenance",
                                  json={"action": "compact", "dry_run": True})).status_code == 200
        expired = await client.post(f"/v1/tables/{TABLE}/maintenance", json={"action": "expire"})
        assert expired.status_code == 200, expired.text
