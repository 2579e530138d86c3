"""The streaming data-file writer: files hold every row once, carry Iceberg statistics, and
dictionary-encode only the columns whose values repeat."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.manifest import DataFile

from tidemark.events import SyncMode
from tidemark.lakehouse import LakehouseSettings, WriteOptions, WriteRequest, open_catalog, write_stream
from tidemark.lakehouse.datafiles import DataFileWriter, dictionary_columns

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("status", pa.string()), pa.field("note", pa.string()),
                    pa.field("tags", pa.list_(pa.string()))])


def batch(start: int, count: int) -> pa.RecordBatch:
    ids = list(range(start, start + count))
    return pa.record_batch([
        pa.array(ids, pa.int64()),
        pa.array([("new", "paid", "sent")[i % 3] for i in ids]),
        pa.array([None if i % 2 else f"note {i}" for i in ids]),
        pa.array([["a", str(i)] for i in ids], pa.list_(pa.string())),
    ], schema=SCHEMA)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog(LakehouseSettings().resolve(tmp_path))


def test_only_repeating_columns_get_a_dictionary() -> None:
    chosen = dictionary_columns(batch(0, 1000))
    assert "status" in chosen
    assert "id" not in chosen
    assert "note" not in chosen


def test_files_roll_at_the_target_size_and_hold_every_row_once(catalog: Catalog) -> None:
    catalog.create_namespace("ns")
    table = catalog.create_table("ns.t", schema=SCHEMA)
    written: list[DataFile] = []
    writer = DataFileWriter(table.metadata, table.io, SCHEMA, written, target_bytes=1)
    for start in (0, 500, 1000):
        writer.write([batch(start, 250), batch(start + 250, 250)])
    writer.close()
    assert len(written) == 3
    assert sum(f.record_count for f in written) == 1500
    assert [f.lower_bounds is not None for f in written] == [True] * 3
    first = pq.ParquetFile(written[0].file_path.removeprefix("file://")).metadata.row_group(0)
    encodings = {first.column(i).path_in_schema: first.column(i).encodings for i in range(first.num_columns)}
    assert "RLE_DICTIONARY" in encodings["status"]
    assert "RLE_DICTIONARY" not in encodings["id"]


def test_a_failed_write_leaves_no_file_behind(catalog: Catalog, tmp_path: Path) -> None:
    catalog.create_namespace("ns")
    table = catalog.create_table("ns.t", schema=SCHEMA)
    writer = DataFileWriter(table.metadata, table.io, SCHEMA, [])
    writer.write([batch(0, 100)])
    writer.abort()
    assert not list(tmp_path.rglob("*.parquet"))


def test_full_refresh_through_the_writer_reads_back_equal(catalog: Catalog) -> None:
    batches = [batch(i, 400) for i in range(0, 4000, 400)]
    result = write_stream(catalog, WriteRequest("ns.events", SCHEMA, SyncMode.FULL_REFRESH), batches,
                          WriteOptions(chunk_bytes=16 * 1024))
    assert result.rows_written == 4000
    data = catalog.load_table("ns.events").scan().to_arrow().sort_by("id")
    expected = pa.Table.from_batches(batches)
    assert data["id"].to_pylist() == expected["id"].to_pylist()
    assert data["note"].to_pylist() == expected["note"].to_pylist()
    assert data["tags"].to_pylist() == expected["tags"].to_pylist()
