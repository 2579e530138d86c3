"""Merge-on-read: a merge keeps the data files, adds position-delete files for the replaced
rows and the new rows as data files, in one overwrite snapshot; a scan shows the merged table."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.manifest import DataFileContent

from tidemark.events import SyncMode
from tidemark.lakehouse import LakehouseSettings, WriteOptions, WriteRequest, open_catalog, read_state, write_stream
from tidemark.lakehouse import merge as merge_module

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("v", pa.string()), pa.field("at", pa.int64())])
MOR: dict[str, Any] = {"merge_strategy": "merge_on_read"}


def batch(ids: list[int] | range, v: str, at: int = 0) -> pa.RecordBatch:
    ids = list(ids)
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array([f"{v}{i}" for i in ids]),
                            pa.array([at] * len(ids), pa.int64())], schema=SCHEMA)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog(LakehouseSettings().resolve(tmp_path))


def load(catalog: Catalog, chunk: int = 100) -> None:
    """300 rows in three files of disjoint key ranges: 0-99, 100-199, 200-299."""
    batches = [batch(range(start, start + chunk), "old") for start in range(0, 300, chunk)]
    write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.FULL_REFRESH, ["id"], "run-0", cursor_field="at"),
                 batches, WriteOptions(chunk_bytes=batches[0].nbytes))


def rows(catalog: Catalog) -> list[tuple[int, str]]:
    data = catalog.load_table("ns.t").scan().to_arrow()
    return sorted(zip(data["id"].to_pylist(), data["v"].to_pylist(), strict=True))


def data_and_deletes(catalog: Catalog) -> tuple[set[str], set[str]]:
    tasks = list(catalog.load_table("ns.t").scan().plan_files())
    assert all(task.file.content == DataFileContent.DATA for task in tasks)
    deletes = {d.file_path for task in tasks for d in task.delete_files}
    return {task.file.file_path for task in tasks}, deletes


def test_updates_and_inserts_land_once_and_no_data_file_is_rewritten(catalog: Catalog) -> None:
    load(catalog)
    before, _ = data_and_deletes(catalog)

    result = write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.INCREMENTAL, ["id"], "run-1",
                                                cursor_field="at"), [batch([5, 150, 151, 300], "new", at=7)],
                          WriteOptions(**MOR))

    got = rows(catalog)
    assert len(got) == 301
    assert len({i for i, _ in got}) == 301
    assert dict(got)[5] == "new5"
    assert dict(got)[150] == "new150"
    assert dict(got)[300] == "new300"
    assert dict(got)[149] == "old149"
    after, deletes = data_and_deletes(catalog)
    assert before < after
    assert len(after) == 4
    assert len(deletes) == 2  # for the files of 0-99 and 100-199, not 200-299
    snapshot = catalog.load_table("ns.t").current_snapshot()
    assert snapshot is not None
    assert snapshot.snapshot_id == result.snapshot_id
    assert snapshot.summary is not None
    assert snapshot.summary.operation.value == "overwrite"
    assert snapshot.summary["added-position-deletes"] == "3"
    state = read_state(catalog, "ns.t")
    assert state is not None
    assert state.cursor_value == 7


def test_repeated_merges_stack_delete_files(catalog: Catalog) -> None:
    load(catalog)
    for round_ in range(1, 4):
        # Key 10 changes every time (its older versions live in files earlier merges added); 400 is new once.
        write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.INCREMENTAL, ["id"], f"run-{round_}",
                                           cursor_field="at"),
                     [batch([10, 120 + round_, 400], f"r{round_}-", at=round_)], WriteOptions(**MOR))
    got = dict(rows(catalog))
    assert len(rows(catalog)) == 301
    assert got[10] == "r3-10"
    assert got[400] == "r3-400"
    assert [got[121], got[122], got[123]] == ["r1-121", "r2-122", "r3-123"]
    _, deletes = data_and_deletes(catalog)
    assert len(deletes) >= 5  # three on the first files, plus deletes against rows earlier merges added
    table = catalog.load_table("ns.t")
    summary = table.current_snapshot().summary  # type: ignore[union-attr]
    assert summary is not None
    assert int(summary["total-position-deletes"]) == 3 + 3 + 3 - 1
    assert int(summary["total-records"]) - int(summary["total-position-deletes"]) == 301


def test_chunks_of_one_run_merge_into_each_other(catalog: Catalog) -> None:
    load(catalog)
    # Chunks of one row each: key 7 changes twice in one run, the second time in a file the first added.
    changes = [batch([7], "first"), batch([250], "x"), batch([7], "last"), batch([7, 8], "final")]
    write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.INCREMENTAL, ["id"], "run-1"), changes,
                 WriteOptions(chunk_bytes=1, **MOR))
    got = rows(catalog)
    assert len(got) == 300
    assert dict(got)[7] == "final7"
    assert dict(got)[8] == "final8"
    assert dict(got)[250] == "x250"


def test_a_failure_before_the_commit_leaves_the_table_and_warehouse_as_they_were(
        catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load(catalog)
    write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.INCREMENTAL, ["id"], "run-1"), [batch([1], "mid")],
                 WriteOptions(**MOR))
    table = catalog.load_table("ns.t")
    snapshot, before = table.current_snapshot(), rows(catalog)
    on_disk = set(tmp_path.rglob("*.parquet"))
    real = merge_module.write_position_deletes
    calls = 0

    def failing(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk full")
        return real(*args)

    monkeypatch.setattr(merge_module, "write_position_deletes", failing)
    with pytest.raises(Exception, match="disk full"):
        write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.INCREMENTAL, ["id"], "run-2"),
                     [batch([2, 150, 250, 500], "lost")], WriteOptions(**MOR))
    assert calls >= 2
    assert catalog.load_table("ns.t").current_snapshot() == snapshot
    assert rows(catalog) == before
    assert set(tmp_path.rglob("*.parquet")) == on_disk  # the delete file written before the failure is gone


def test_a_source_failure_midway_commits_nothing(catalog: Catalog) -> None:
    load(catalog)
    snapshot, before = catalog.load_table("ns.t").current_snapshot(), rows(catalog)

    def source() -> Iterator[pa.RecordBatch]:
        yield batch([3, 4], "lost")
        raise ConnectionError("source went away")

    with pytest.raises(ConnectionError):
        write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.INCREMENTAL, ["id"], "run-1"), source(),
                     WriteOptions(chunk_bytes=1, **MOR))
    assert catalog.load_table("ns.t").current_snapshot() == snapshot
    assert rows(catalog) == before


def test_random_merges_equal_the_source_and_a_full_refresh_folds_the_deletes(catalog: Catalog) -> None:
    rng = random.Random(7)
    source = {i: f"old{i}" for i in range(1000)}
    write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.FULL_REFRESH, ["id"], "run-0"), [batch([0], "x")])
    # Row groups of 64 rows: a file is read in several batches, so positions must run across them.
    catalog.load_table("ns.t").transaction().set_properties({"write.parquet.row-group-limit": "64"}) \
        .commit_transaction()
    batches = [batch(range(start, start + 250), "old") for start in range(0, 1000, 250)]
    write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.FULL_REFRESH, ["id"], "run-0"), batches,
                 WriteOptions(chunk_bytes=batches[0].nbytes))
    for round_ in range(6):
        ids = rng.sample(range(1200), 60)
        tag = f"r{round_}-"
        source.update({i: f"{tag}{i}" for i in ids})
        write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.INCREMENTAL, ["id"], f"run-{round_ + 1}"),
                     [batch(ids[:30], tag), batch(ids[30:], tag)],
                     WriteOptions(chunk_bytes=rng.choice([1, 1 << 20]), **MOR))
        assert rows(catalog) == sorted(source.items())
    assert data_and_deletes(catalog)[1]

    everything = [batch(sorted(source), "full")]
    write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.FULL_REFRESH, ["id"], "run-9"), everything)
    assert rows(catalog) == sorted((i, f"full{i}") for i in source)
    assert data_and_deletes(catalog)[1] == set()
    summary = catalog.load_table("ns.t").current_snapshot().summary  # type: ignore[union-attr]
    assert summary is not None
    assert summary["total-delete-files"] == "0"
    assert summary["total-position-deletes"] == "0"


def test_copy_on_write_is_still_available(catalog: Catalog) -> None:
    load(catalog)
    write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.INCREMENTAL, ["id"], "run-1"), [batch([5], "new")],
                 WriteOptions(merge_strategy="copy_on_write"))
    assert dict(rows(catalog))[5] == "new5"
    assert data_and_deletes(catalog)[1] == set()


def test_files_written_before_a_key_widening_are_merged(catalog: Catalog) -> None:
    narrow = pa.schema([pa.field("id", pa.int32()), pa.field("v", pa.string()), pa.field("at", pa.int64())])
    old = pa.record_batch([pa.array(range(100), pa.int32()), pa.array([f"old{i}" for i in range(100)]),
                           pa.array([0] * 100, pa.int64())], schema=narrow)
    write_stream(catalog, WriteRequest("ns.t", narrow, SyncMode.FULL_REFRESH, ["id"], "run-0"), [old])
    # The key becomes a long; the first file still holds int32 keys.
    write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.INCREMENTAL, ["id"], "run-1"),
                 [batch([5, 3_000_000_000], "new")], WriteOptions(**MOR))
    got = dict(rows(catalog))
    assert len(got) == 101
    assert got[5] == "new5"
    assert got[3_000_000_000] == "new3000000000"
    assert len(data_and_deletes(catalog)[1]) == 1


@pytest.mark.parametrize("ids", [[5, 3, 9, 1, 7], [5, 3, 9, 3, 1]], ids=["out of key order", "a key held twice"])
def test_every_old_version_of_a_key_is_deleted_whatever_the_order_in_its_file(catalog: Catalog,
                                                                               ids: list[int]) -> None:
    # A full refresh writes rows as the source sent them: not sorted by key, and from a source without a
    # unique key (a view) possibly with a key twice. Keys are found by binary search where that is exact.
    write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.FULL_REFRESH, ["id"], "run-0"), [batch(ids, "old")])
    write_stream(catalog, WriteRequest("ns.t", SCHEMA, SyncMode.INCREMENTAL, ["id"], "run-1"),
                 [batch([3, 9, 42], "new")], WriteOptions(**MOR))
    expected = {(i, f"old{i}") for i in ids if i not in (3, 9)} | {(3, "new3"), (9, "new9"), (42, "new42")}
    assert rows(catalog) == sorted(expected)
