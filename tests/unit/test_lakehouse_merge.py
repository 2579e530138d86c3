"""The merge rewrites only the data files that hold a changed key, and the table ends up equal
to the source: updated rows replaced, new rows added, untouched files kept as they were."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from tidemark.events import SyncMode
from tidemark.lakehouse import LakehouseSettings, WriteOptions, WriteRequest, open_catalog, write_stream

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([pa.field("region", pa.string()), pa.field("id", pa.int64()), pa.field("v", pa.string()),
                    pa.field("tags", pa.list_(pa.string()))])


def batch(ids: range | list[int], v: str, region: str = "eu") -> pa.RecordBatch:
    ids = list(ids)
    return pa.record_batch([pa.array([region] * len(ids)), pa.array(ids, pa.int64()), pa.array([v] * len(ids)),
                            pa.array([[v, str(i)] for i in ids], pa.list_(pa.string()))], schema=SCHEMA)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog(LakehouseSettings().resolve(tmp_path))


def files(catalog: Catalog, name: str) -> set[str]:
    return {task.file.file_path for task in catalog.load_table(name).scan().plan_files()}


def content(catalog: Catalog, name: str) -> dict[tuple[str, int], tuple[str, list[str]]]:
    data = catalog.load_table(name).scan().to_arrow()
    return {(r["region"], r["id"]): (r["v"], r["tags"]) for r in data.to_pylist()}


def test_only_the_files_holding_changed_keys_are_rewritten(catalog: Catalog) -> None:
    # Three files with disjoint key ranges: 0-99, 100-199, 200-299.
    batches = [batch(range(start, start + 100), "old") for start in (0, 100, 200)]
    write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.FULL_REFRESH, ["id"], "run-1"), batches,
                 WriteOptions(chunk_bytes=batches[0].nbytes))
    before = files(catalog, "ns.t")
    assert len(before) == 3

    write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.INCREMENTAL, ["id"], "run-2"),
                 [batch([150, 151, 300], "new")], WriteOptions(merge_strategy="copy_on_write"))

    after = files(catalog, "ns.t")
    assert len(before & after) == 2  # the files of 0-99 and 200-299 are untouched
    rows = content(catalog, "ns.t")
    assert len(rows) == 301
    assert rows[("eu", 150)] == ("new", ["new", "150"])
    assert rows[("eu", 300)] == ("new", ["new", "300"])
    assert rows[("eu", 149)] == ("old", ["old", "149"])


def test_composite_keys_merge_row_by_row(catalog: Catalog) -> None:
    keys = ["region", "id"]
    write_stream(catalog, WriteRequest("ns.c", SCHEMA, SyncMode.FULL_REFRESH, keys, "run-1"),
                 [batch(range(10), "old", "eu"), batch(range(10), "old", "us")])
    # Same ids in two regions: only (us, 3) changes; a key repeated in the input keeps its last row.
    changes = [batch([3], "first", "us"), batch([3], "last", "us"), batch([10], "new", "eu")]
    write_stream(catalog, WriteRequest("ns.c", SCHEMA, SyncMode.INCREMENTAL, keys, "run-2"), changes,
                 WriteOptions(chunk_bytes=1))
    rows = content(catalog, "ns.c")
    assert len(rows) == 21
    assert rows[("us", 3)][0] == "last"
    assert rows[("eu", 3)][0] == "old"
    assert rows[("eu", 10)][0] == "new"
