"""The Iceberg REST catalog through pyiceberg's own client: credentials, warehouses, conflicts, the worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import SecretStr

from tests.fixtures.storage import free_port
from tests.integration.lakehouse_data import SCHEMA, batch, batches, expected, table_rows
from tidemark.connectors import get_connector
from tidemark.errors import ConfigError, TransientError
from tidemark.events import DestinationSpec, PartitionField, StreamSpec, SyncMode
from tidemark.lakehouse import Lakehouse, LakehouseSettings, WriteRequest, close_catalog, open_catalog, write_stream
from tidemark_ingest.worker.load import Progress, load_stream
from tidemark_testing.rest_catalog import serving

pytestmark = pytest.mark.integration

TABLE = "raw.orders"
SECRET = "never-in-a-message-42"


def test_wrong_credentials_are_a_config_error_without_the_secret(rest_lakehouse: LakehouseSettings) -> None:
    wrong = rest_lakehouse.model_copy(update={"catalog_credential": SecretStr(f"tidemark:{SECRET}")})
    with pytest.raises(ConfigError, match="refused our credentials") as info:
        open_catalog(wrong)
    assert SECRET not in info.value.message
    no_credentials = rest_lakehouse.model_copy(update={"catalog_credential": None})
    with pytest.raises(ConfigError, match="refused our credentials"):
        open_catalog(no_credentials)


def test_unknown_warehouse_is_a_config_error(rest_lakehouse: LakehouseSettings) -> None:
    with pytest.raises(ConfigError, match="no warehouse 'elsewhere'"):
        open_catalog(rest_lakehouse.model_copy(update={"catalog_warehouse": "elsewhere"}))


def test_unreachable_catalog_is_transient(tmp_path: Path) -> None:
    settings = LakehouseSettings(catalog_type="rest", catalog_uri=f"http://127.0.0.1:{free_port()}",
                                 warehouse=(tmp_path / "wh").as_uri())
    with pytest.raises(TransientError, match="cannot reach"):
        open_catalog(settings)


def test_static_bearer_token(tmp_path: Path) -> None:
    backend = LakehouseSettings().resolve(tmp_path)
    with serving(backend, "lake", token=SECRET) as server:
        client = LakehouseSettings(catalog_type="rest", catalog_uri=server.uri, warehouse=backend.warehouse,
                                   catalog_warehouse="lake", catalog_token=SecretStr(SECRET))
        catalog = open_catalog(client)
        write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, run_id="r1"), [batch(range(5))])
        assert sorted(table_rows(catalog, TABLE)) == list(range(5))
        close_catalog(catalog)
        with pytest.raises(ConfigError, match="refused our credentials"):
            open_catalog(client.model_copy(update={"catalog_token": SecretStr("guess")}))


@pytest.mark.parametrize("mode", [SyncMode.INCREMENTAL_APPEND, SyncMode.FULL_REFRESH])
def test_a_concurrent_commit_is_refused_by_the_server(rest_lakehouse: LakehouseSettings, mode: SyncMode,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    first, other = open_catalog(rest_lakehouse), open_catalog(rest_lakehouse)
    base = batches(range(100))
    write_stream(first, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, run_id="r1"), base)
    interloper = batches(range(100, 150))
    mine = [batch(range(1000, 1010)), batch(range(1010, 1020))]

    def slow_source() -> Iterator[pa.RecordBatch]:
        yield mine[0]
        # Another writer commits while this run is still reading its source.
        write_stream(other, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL_APPEND, run_id="r2"), interloper)
        yield mine[1]

    if mode is SyncMode.INCREMENTAL_APPEND:
        # Appends commute: the client rebases on the other writer's snapshot and retries.
        write_stream(first, WriteRequest(TABLE, SCHEMA, mode, run_id="r3"), slow_source())
        assert table_rows(first, TABLE) == expected(base, interloper, mine)
    else:
        # Replacing what another writer just added would drop its rows: the run fails, retryable.
        with pytest.raises(TransientError, match="another writer committed first"):
            write_stream(first, WriteRequest(TABLE, SCHEMA, mode, run_id="r3"), slow_source())
        assert table_rows(first, TABLE) == expected(base, interloper)
    # Either way the server refused the stale commit (409) first.
    assert "Commit failed due to a concurrent update" in caplog.text
    for catalog in (first, other):
        close_catalog(catalog)


def test_worker_loads_a_partitioned_stream_through_rest(
        tmp_path: Path, rest_catalog: Callable[[LakehouseSettings], LakehouseSettings],
        s3_lakehouse: LakehouseSettings) -> None:
    settings = rest_catalog(s3_lakehouse)
    source_type = get_connector("sqlite")
    source = source_type(source_type.config_model.model_validate({"path": "sample:shop"}))
    lake = Lakehouse(settings)
    stream = StreamSpec(name="main.orders", sync_mode=SyncMode.INCREMENTAL, cursor_field="updated_at",
                        primary_key=["id"], partition=[PartitionField(column="ordered_on", transform="month"),
                                                       PartitionField(column="status")])
    try:
        stats = load_stream(lake, source, DestinationSpec(namespace="shop"), stream, "run-1", Progress())
        assert stats.status == "succeeded", stats.error
        table = lake.catalog.load_table("shop.orders")
        assert [(f.name, str(f.transform)) for f in table.spec().fields] == [
            ("ordered_on_month", "month"), ("status", "identity")]
        assert table.scan().to_arrow().num_rows == stats.rows_written > 0
        assert all(f"/status={task.file.partition[1]}/" in task.file.file_path
                   for task in table.scan().plan_files())
        assert table.location().startswith(s3_lakehouse.warehouse)
    finally:
        source.close()
        lake.close()
