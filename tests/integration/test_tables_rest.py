"""/v1/tables when ingest-svc's lakehouse is an Iceberg REST catalog (pyiceberg's own client, over HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.integration.lakehouse_data import SCHEMA, batch
from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.events import SyncMode
from tidemark.lakehouse import LakehouseSettings, WriteRequest, close_catalog, open_catalog, write_stream
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_ingest.app import DEFINITION
from tidemark_ingest.settings import IngestSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.integration
TOKEN = "integration-token"
SECRET = "never-in-a-message-43"

Client = Callable[[LakehouseSettings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client(tmp_path: Path) -> Client:
    def make(lakehouse: LakehouseSettings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        settings = IngestSettings(
            platform=PlatformSettings(home=tmp_path),
            database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/ingest.db"),
            auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
            bus="memory",
            lakehouse=lakehouse,
        )
        return running(build_app([(DEFINITION, settings)], title="t", bus=MemoryBus(), migrate=True), TOKEN)

    return make


def write_orders(lakehouse: LakehouseSettings) -> None:
    catalog = open_catalog(lakehouse)
    try:
        write_stream(catalog, WriteRequest("raw.orders", SCHEMA, SyncMode.FULL_REFRESH, primary_key=["id"],
                                           run_id="run-rest"), [batch(range(25))])
    finally:
        close_catalog(catalog)


async def test_tables_are_read_through_the_rest_catalog(rest_lakehouse: LakehouseSettings, client: Client) -> None:
    await asyncio.to_thread(write_orders, rest_lakehouse)
    async with client(rest_lakehouse) as api:
        listed = (await api.get("/v1/tables")).json()
        assert [(t["identifier"], t["row_count"], t["last_run_id"]) for t in listed] == [
            ("raw.orders", 25, "run-rest")]
        shown = await api.get("/v1/tables/raw.orders")
        assert shown.status_code == 200, shown.text
        assert shown.json()["snapshots"][0]["added_rows"] == 25
        preview = (await api.get("/v1/tables/raw.orders/preview", params={"limit": 3})).json()
        assert len(preview["rows"]) == 3
        assert (await api.get("/v1/tables/raw.nothing")).status_code == 404


async def test_refused_credentials_are_a_503_without_the_secret(
    rest_lakehouse: LakehouseSettings, client: Client
) -> None:
    wrong = rest_lakehouse.model_copy(update={"catalog_credential": SecretStr(f"tidemark:{SECRET}")})
    async with client(wrong) as api:
        response = await api.get("/v1/tables")
    assert response.status_code == 503
    assert "refused our credentials" in response.json()["detail"]
    assert SECRET not in response.text
