"""One behaviour suite for the Iceberg writer on every catalog and warehouse we support.

Backends: SQLite catalog + S3 (moto), SQLite catalog + Azure Blob (Azurite),
PostgreSQL catalog + S3, REST catalog + local disk, REST catalog + S3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import quote_plus

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from tests.integration.lakehouse_data import SCHEMA, batches, exists, expected, read_file, table_rows
from tidemark.events import PartitionField, SyncMode
from tidemark.lakehouse import (
    LakehouseSettings,
    WriteOptions,
    WriteRequest,
    close_catalog,
    open_catalog,
    read_state,
    write_stream,
)

pytestmark = pytest.mark.integration

TABLE = "raw.orders"
BACKENDS = ["s3", "azure", "postgres_s3", "rest", "rest_s3"]


@pytest.fixture(params=BACKENDS)
def lakehouse(request: pytest.FixtureRequest) -> LakehouseSettings:
    kind: str = request.param
    if kind == "s3":
        return request.getfixturevalue("s3_lakehouse")  # type: ignore[no-any-return]
    if kind == "azure":
        return request.getfixturevalue("azure_lakehouse")  # type: ignore[no-any-return]
    if kind == "rest":
        return request.getfixturevalue("rest_lakehouse")  # type: ignore[no-any-return]
    s3: LakehouseSettings = request.getfixturevalue("s3_lakehouse")
    if kind == "postgres_s3":
        make_database: Callable[[], str] = request.getfixturevalue("pg_database")
        url = make_database().replace("+asyncpg", "+psycopg")
        return s3.model_copy(update={"catalog_uri": url})
    serve: Callable[[LakehouseSettings], LakehouseSettings] = request.getfixturevalue("rest_catalog")
    return serve(s3)


@pytest.fixture
def catalogs(lakehouse: LakehouseSettings) -> Iterator[Callable[[], Catalog]]:
    """Opens catalog clients for ``lakehouse``; all are closed after the test."""
    opened: list[Catalog] = []

    def open_one() -> Catalog:
        opened.append(open_catalog(lakehouse))
        return opened[-1]

    yield open_one
    for catalog in opened:
        close_catalog(catalog)


def write(catalog: Catalog, data: list[pa.RecordBatch] | Iterator[pa.RecordBatch], mode: SyncMode, run_id: str,
          partition: list[PartitionField] | None = None) -> int | None:
    result = write_stream(catalog, WriteRequest(TABLE, SCHEMA, mode, primary_key=["id"], run_id=run_id,
                                                cursor_field="updated_at", partition=partition), data,
                          WriteOptions(chunk_bytes=48 * 1024))
    return result.snapshot_id


def test_full_refresh_append_and_upsert(lakehouse: LakehouseSettings, catalogs: Callable[[], Catalog]) -> None:
    catalog = catalogs()
    first = batches(range(2000))
    write(catalog, first, SyncMode.FULL_REFRESH, "run-1")
    table = catalog.load_table(TABLE)
    assert table.location().startswith(lakehouse.warehouse.rstrip("/"))
    files = [task.file.file_path for task in table.scan().plan_files()]
    assert len(files) > 1  # chunked: several data files, one snapshot
    assert len(table.snapshots()) == 1
    assert all(exists(lakehouse, f) for f in files)
    assert table_rows(catalog, TABLE) == expected(first)

    appended = batches(range(2000, 2500))
    write(catalog, appended, SyncMode.INCREMENTAL_APPEND, "run-2")
    assert table_rows(catalog, TABLE) == expected(first, appended)

    changes = batches(range(100, 400), version=2) + batches(range(2500, 2600), version=2)
    write(catalog, changes, SyncMode.INCREMENTAL, "run-3")
    got = table_rows(catalog, TABLE)
    assert got == expected(first, appended, changes)
    assert got[150]["note"] == "v2-150"
    assert got[99]["note"] == "v1-99"

    # A fresh client sees the state the last commit recorded.
    state = read_state(catalogs(), TABLE)
    assert state is not None
    all_rows = pa.Table.from_batches(first + appended + changes)
    assert state.cursor_value == max(all_rows["updated_at"].to_pylist())
    assert catalog.load_table(TABLE).current_snapshot().summary["tidemark.run-id"] == "run-3"


def test_failed_full_refresh_leaves_the_previous_table(lakehouse: LakehouseSettings,
                                                       catalogs: Callable[[], Catalog]) -> None:
    catalog = catalogs()
    first = batches(range(300))
    before = write(catalog, first, SyncMode.FULL_REFRESH, "run-1")

    def broken() -> Iterator[pa.RecordBatch]:
        yield from batches(range(1000, 1600), version=2)
        raise ConnectionResetError("source went away")

    with pytest.raises(ConnectionResetError):
        write(catalog, broken(), SyncMode.FULL_REFRESH, "run-2")
    table = catalog.load_table(TABLE)
    assert table.current_snapshot().snapshot_id == before
    assert table_rows(catalog, TABLE) == expected(first)


PARTITIONS = {
    "identity": ("country", "identity", "country"),
    "day": ("updated_at", "day", "updated_at_day"),
    "month": ("updated_at", "month", "updated_at_month"),
    "bucket": ("id", "bucket[8]", "id_bucket_8"),
}


@pytest.mark.parametrize("kind", list(PARTITIONS))
@pytest.mark.parametrize("lakehouse", ["s3", "azure", "rest"], indirect=True)
def test_partitioned_files_land_in_their_partitions(lakehouse: LakehouseSettings, catalogs: Callable[[], Catalog],
                                                  kind: str) -> None:
    column, transform, name = PARTITIONS[kind]
    catalog = catalogs()
    first, more = batches(range(1200)), batches(range(1200, 1500))
    spec = [PartitionField(column=column, transform=transform)]
    write(catalog, first, SyncMode.FULL_REFRESH, "run-1", spec)
    write(catalog, more, SyncMode.INCREMENTAL_APPEND, "run-2")  # no spec given: the table keeps its own
    table = catalog.load_table(TABLE)
    [field] = table.spec().fields
    assert (field.name, str(field.transform)) == (name, transform)
    source_type = table.schema().find_field(column).field_type
    partitions = set()
    for task in table.scan().plan_files():
        value = task.file.partition[0]
        human = field.transform.to_human_string(source_type, value)
        assert f"/{name}={quote_plus(human, safe='')}/" in task.file.file_path
        # Every row in the file belongs to the file's partition.
        rows = read_file(lakehouse, task.file.file_path)
        derived = field.transform.pyarrow_transform(source_type)(rows[column]) if kind != "identity" else rows[column]
        assert set(derived.to_pylist()) == {value}
        partitions.add(value)
    assert len(partitions) >= 3
    assert table_rows(catalog, TABLE) == expected(first, more)

