from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tidemark.errors import ConfigError
from tidemark.events import DestinationSpec, SyncMode
from tidemark.lakehouse import (
    Lakehouse,
    LakehouseSettings,
    WriteOptions,
    WriteRequest,
    read_parquet_state,
    table_identifier,
    write_parquet_stream,
)

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])
TABLE = "raw.orders"


@pytest.fixture
def settings(tmp_path: Path) -> LakehouseSettings:
    return LakehouseSettings().resolve(tmp_path)


def batch(ids: range | list[int], name: str = "a") -> pa.RecordBatch:
    return pa.record_batch([pa.array(list(ids), pa.int64()), pa.array([name] * len(ids))], schema=SCHEMA)


def table_dir(settings: LakehouseSettings) -> Path:
    return Path(settings.warehouse.removeprefix("file://")) / "parquet" / "raw" / "orders"


def read(settings: LakehouseSettings) -> list[int]:
    return sorted(ds.dataset(table_dir(settings), format="parquet").to_table()["id"].to_pylist())


def test_full_refresh_swaps_and_append_adds(settings: LakehouseSettings) -> None:
    write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, run_id="r1", cursor_field="id"),
                         [batch(range(5))])
    write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, run_id="r2", cursor_field="id"),
                         [batch(range(10, 13))])
    assert read(settings) == [10, 11, 12]
    result = write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL_APPEND, run_id="r3",
                                                         cursor_field="id"), [batch([20, 21])])
    assert result.rows_written == 2
    assert result.bytes_written > 0
    assert read(settings) == [10, 11, 12, 20, 21]
    state = read_parquet_state(settings, TABLE)
    assert state is not None
    assert state.cursor_value == 21
    # No staging leftovers next to the table.
    assert not any((table_dir(settings).parent / "_staging").iterdir())


def test_failed_full_refresh_keeps_the_previous_files(settings: LakehouseSettings) -> None:
    write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, run_id="r1"), [batch(range(3))])

    def broken() -> Iterator[pa.RecordBatch]:
        yield batch(range(100, 200))
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError):
        write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, run_id="r2"), broken(),
                             WriteOptions(chunk_bytes=1))
    assert read(settings) == [0, 1, 2]


def test_parquet_refuses_merge_and_incompatible_appends(settings: LakehouseSettings) -> None:
    with pytest.raises(ConfigError, match="cannot merge"):
        write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, primary_key=["id"]),
                             [batch([1])])
    write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, run_id="r1"), [batch([1])])
    changed = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.float64())])
    with pytest.raises(ConfigError, match="'name'"):
        write_parquet_stream(settings, WriteRequest(TABLE, changed, SyncMode.INCREMENTAL_APPEND, run_id="r2"), [])


def test_lakehouse_routes_by_destination_kind(settings: LakehouseSettings) -> None:
    lake = Lakehouse(settings)
    dest = DestinationSpec(kind="parquet", namespace="raw", table_prefix="")
    ident = table_identifier(dest, "main.orders")
    assert ident == TABLE
    lake.write(dest, WriteRequest(ident, SCHEMA, SyncMode.INCREMENTAL_APPEND, [], "r1", "id"), [batch([7])])
    state = lake.read_state(dest, ident)
    assert state is not None
    assert state.cursor_value == 7
    assert read(settings) == [7]
    iceberg = DestinationSpec(namespace="lake", table_prefix="src_")
    assert table_identifier(iceberg, "sales.orders") == "lake.src_sales__orders"
