"""The Parquet destination on object stores: S3 (moto) and Azure Blob (Azurite, which cannot rename)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from pyarrow import fs as pafs

from tests.integration.lakehouse_data import SCHEMA, batches, by_id, expected
from tidemark.events import PartitionField, SyncMode
from tidemark.lakehouse import LakehouseSettings, WriteRequest, read_parquet_state, write_parquet_stream
from tidemark.lakehouse.storage import warehouse_filesystem

pytestmark = pytest.mark.integration

TABLE = "raw.orders"
SPEC = [PartitionField(column="country"), PartitionField(column="updated_at", transform="day")]


@pytest.fixture(params=["s3", "azure"])
def lakehouse(request: pytest.FixtureRequest) -> LakehouseSettings:
    return request.getfixturevalue(f"{request.param}_lakehouse")  # type: ignore[no-any-return]


def table_root(settings: LakehouseSettings) -> tuple[pafs.FileSystem, str]:
    fs, root = warehouse_filesystem(settings)
    return fs, f"{root}/parquet/raw/orders"


def read(settings: LakehouseSettings) -> dict[int, dict[str, Any]]:
    fs, root = table_root(settings)
    hive = ds.partitioning(pa.schema([pa.field("country", pa.string())]), flavor="hive")
    return by_id(ds.dataset(root, filesystem=fs, format="parquet", partitioning=hive).to_table())


def objects(settings: LakehouseSettings, under: str) -> list[str]:
    fs, root = warehouse_filesystem(settings)
    selector = pafs.FileSelector(f"{root}/{under}", recursive=True, allow_not_found=True)
    return sorted(i.path.removeprefix(f"{root}/{under}/") for i in fs.get_file_info(selector) if i.is_file)


def write(settings: LakehouseSettings, data: list[pa.RecordBatch] | Iterator[pa.RecordBatch], mode: SyncMode,
          run_id: str, partition: list[PartitionField] | None = SPEC) -> int:
    return write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, mode, run_id=run_id, cursor_field="updated_at",
                                                       partition=partition), data).rows_written


def test_full_refresh_and_append_in_hive_directories(lakehouse: LakehouseSettings) -> None:
    first = batches(range(1500))
    assert write(lakehouse, first, SyncMode.FULL_REFRESH, "run-1") == 1500
    assert read(lakehouse) == expected(first)
    files = objects(lakehouse, "parquet/raw/orders")
    data = [f for f in files if f.endswith(".parquet")]
    assert {f.split("/")[0] for f in data} == {"country=DE", "country=FR", "country=NL",
                                               "country=%C3%9Cn%C3%AFcode%20land",
                                               "country=__HIVE_DEFAULT_PARTITION__"}
    assert {f.split("/")[1] for f in data} == {"updated_at_day=2026-01-30", "updated_at_day=2026-02-10",
                                               "updated_at_day=2026-02-21", "updated_at_day=2026-03-04",
                                               "updated_at_day=2026-03-15", "updated_at_day=2026-03-26"}
    assert "_tidemark_state.json" in files

    more = batches(range(1500, 1800))
    write(lakehouse, more, SyncMode.INCREMENTAL_APPEND, "run-2", partition=None)
    assert read(lakehouse) == expected(first, more)
    state = read_parquet_state(lakehouse, TABLE)
    assert state is not None
    assert state.cursor_value == max(pa.Table.from_batches(first + more)["updated_at"].to_pylist())

    # Only DE rows now: the other countries' directories go whole, DE's old files one by one.
    replacement = batches(range(0, 500, 5), version=3)
    write(lakehouse, replacement, SyncMode.FULL_REFRESH, "run-3")
    assert read(lakehouse) == expected(replacement)
    # The old runs' objects are gone, and nothing is left behind in staging.
    data = [f for f in objects(lakehouse, "parquet/raw/orders") if f.endswith(".parquet")]
    assert {f.split("/")[0] for f in data} == {"country=DE"}
    assert all("run-3" in f for f in data)
    assert objects(lakehouse, "parquet/raw/_staging") == []


def test_failed_run_leaves_the_files_untouched(lakehouse: LakehouseSettings) -> None:
    first = batches(range(400))
    write(lakehouse, first, SyncMode.FULL_REFRESH, "run-1")
    before = objects(lakehouse, "parquet/raw/orders")

    def broken() -> Iterator[pa.RecordBatch]:
        yield from batches(range(5000, 5600), version=2)
        raise ConnectionResetError("source went away")

    for mode in (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL_APPEND):
        with pytest.raises(ConnectionResetError):
            write(lakehouse, broken(), mode, "run-2")
        assert objects(lakehouse, "parquet/raw/orders") == before
        assert read(lakehouse) == expected(first)
    assert objects(lakehouse, "parquet/raw/_staging") == []


def test_unpartitioned_parquet_round_trip(lakehouse: LakehouseSettings) -> None:
    data = batches(range(700))
    write(lakehouse, data, SyncMode.FULL_REFRESH, "run-1", partition=[])
    assert all("/" not in f for f in objects(lakehouse, "parquet/raw/orders"))
    assert read(lakehouse) == expected(data)
