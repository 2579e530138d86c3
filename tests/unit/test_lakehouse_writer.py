from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from tidemark.errors import ConfigError
from tidemark.events import SyncMode
from tidemark.lakehouse import (
    LakehouseSettings,
    WriteOptions,
    WriteRequest,
    WriteResult,
    open_catalog,
    read_state,
    write_stream,
)
from tidemark.lakehouse.settings import MergeStrategy

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("updated_at", pa.timestamp("us", tz="UTC")),
])
TABLE = "shop.customers"


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog(LakehouseSettings().resolve(tmp_path))


def batch(ids: range | list[int], name: str = "v1", day: int = 1) -> pa.RecordBatch:
    ids = list(ids)
    return pa.record_batch(
        [pa.array(ids, pa.int64()), pa.array([f"{name}-{i}" for i in ids]),
         pa.array([datetime(2026, 1, day, tzinfo=UTC)] * len(ids), pa.timestamp("us", tz="UTC"))],
        schema=SCHEMA,
    )


def rows(catalog: Catalog) -> dict[int, str]:
    table = catalog.load_table(TABLE).scan().to_arrow()
    return dict(zip(table["id"].to_pylist(), table["name"].to_pylist(), strict=True))


def write(catalog: Catalog, batches: list[pa.RecordBatch] | Iterator[pa.RecordBatch], mode: SyncMode,
          run_id: str = "run-1", schema: pa.Schema = SCHEMA, chunk_bytes: int = 1024,
          upsert_chunk_rows: int = 50_000) -> WriteResult:
    return write_stream(catalog, WriteRequest(TABLE, schema, mode, primary_key=["id"], run_id=run_id,
                                              cursor_field="updated_at"), batches,
                        WriteOptions(chunk_bytes=chunk_bytes, upsert_chunk_rows=upsert_chunk_rows))


def test_full_refresh_replaces_rows_in_one_snapshot(catalog: Catalog) -> None:
    first = write(catalog, [batch(range(50)), batch(range(50, 100))], SyncMode.FULL_REFRESH)
    assert first.rows_written == 100
    assert first.bytes_written > 0
    second = write(catalog, [batch(range(200, 215), "v2"), batch(range(215, 230), "v2")],
                   SyncMode.FULL_REFRESH, run_id="run-2", chunk_bytes=1)
    assert sorted(rows(catalog)) == list(range(200, 230))
    table = catalog.load_table(TABLE)
    assert table.current_snapshot().snapshot_id == second.snapshot_id
    # A tiny chunk_bytes forced one data file per batch, yet each run is exactly one snapshot.
    assert len(table.snapshots()) == 2
    assert len(list(table.scan().plan_files())) > 1


def test_failed_full_refresh_leaves_the_previous_snapshot(catalog: Catalog) -> None:
    write(catalog, [batch(range(10))], SyncMode.FULL_REFRESH)
    before = catalog.load_table(TABLE).current_snapshot().snapshot_id

    def broken() -> Iterator[pa.RecordBatch]:
        yield batch(range(100, 150), "new")
        yield batch(range(150, 200), "new")
        raise RuntimeError("source connection dropped")

    with pytest.raises(RuntimeError, match="connection dropped"):
        write(catalog, broken(), SyncMode.FULL_REFRESH, run_id="run-2")
    table = catalog.load_table(TABLE)
    assert table.current_snapshot().snapshot_id == before
    assert rows(catalog) == {i: f"v1-{i}" for i in range(10)}
    # The uncommitted data files were removed again.
    data_dir = Path(table.location().removeprefix("file://")) / "data"
    assert len(list(data_dir.glob("*.parquet"))) == len(list(table.scan().plan_files()))


def test_append_adds_rows(catalog: Catalog) -> None:
    write(catalog, [batch(range(5))], SyncMode.INCREMENTAL_APPEND)
    result = write(catalog, [batch(range(5, 8), day=2)], SyncMode.INCREMENTAL_APPEND, run_id="run-2")
    assert sorted(rows(catalog)) == list(range(8))
    assert result.rows_written == 3


def test_append_of_nothing_commits_nothing(catalog: Catalog) -> None:
    write(catalog, [batch(range(5))], SyncMode.INCREMENTAL_APPEND)
    result = write(catalog, [], SyncMode.INCREMENTAL_APPEND, run_id="run-2")
    assert result.snapshot_id is None
    assert result.rows_written == 0
    assert len(catalog.load_table(TABLE).snapshots()) == 1


def test_upsert_merges_updates_and_inserts(catalog: Catalog) -> None:
    write(catalog, [batch(range(10))], SyncMode.INCREMENTAL)
    # Updates ids 5..9, inserts 10..14; id 12 comes twice and the later row wins.
    changes = [batch(range(5, 13), "v2", day=2), batch([12, 13, 14], "v3", day=3)]
    result = write(catalog, changes, SyncMode.INCREMENTAL, run_id="run-2", upsert_chunk_rows=4)
    got = rows(catalog)
    assert sorted(got) == list(range(15))
    assert got[4] == "v1-4"
    assert got[5] == "v2-5"
    assert got[11] == "v2-11"
    assert got[12] == "v3-12"
    assert result.rows_written == 11


def test_upsert_needs_a_primary_key(catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match="primary key"):
        write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, primary_key=[], run_id="r",
                                           cursor_field="updated_at"), [batch(range(3))])


def test_state_survives_in_the_snapshot_summary(catalog: Catalog) -> None:
    assert read_state(catalog, TABLE) is None
    write(catalog, [batch(range(3), day=1), batch(range(3, 6), day=4), batch(range(6, 9), day=2)],
          SyncMode.INCREMENTAL_APPEND, run_id="run-7")
    # A fresh catalog object: the state comes from the table, not from memory.
    state = read_state(open_catalog(LakehouseSettings().resolve(_home(catalog))), TABLE)
    assert state is not None
    assert state.cursor_field == "updated_at"
    assert state.cursor_value == datetime(2026, 1, 4, tzinfo=UTC)
    summary = catalog.load_table(TABLE).current_snapshot().summary
    assert summary["tidemark.run-id"] == "run-7"


@pytest.mark.parametrize("strategy", ["copy_on_write", "merge_on_read"])
def test_upsert_that_changes_nothing_commits_nothing(catalog: Catalog, strategy: MergeStrategy) -> None:
    options = WriteOptions(chunk_bytes=1024, merge_strategy=strategy)
    request = WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, primary_key=["id"], run_id="run-1",
                           cursor_field="updated_at")
    write_stream(catalog, request, [batch(range(3), day=5)], options)
    before = catalog.load_table(TABLE).current_snapshot()
    # The same rows again (an incremental re-read of the boundary): the state would not change, so
    # the run commits nothing at all: no data file, no delete file, no snapshot.
    again = write_stream(catalog, replace(request, run_id="run-2"), [batch(range(3), day=5)], options)
    table = catalog.load_table(TABLE)
    assert table.current_snapshot().snapshot_id == before.snapshot_id
    assert again.snapshot_id is None
    assert again.rows_written == 0
    state = read_state(catalog, TABLE)
    assert state is not None
    assert state.cursor_value == datetime(2026, 1, 5, tzinfo=UTC)
    assert rows(catalog) == {i: f"v1-{i}" for i in range(3)}


@pytest.mark.parametrize("strategy", ["copy_on_write", "merge_on_read"])
def test_boundary_rows_merge_only_when_they_changed(catalog: Catalog, strategy: MergeStrategy) -> None:
    options = WriteOptions(chunk_bytes=1024, merge_strategy=strategy)

    def request(run_id: str) -> WriteRequest:
        return WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, primary_key=["id"], run_id=run_id,
                            cursor_field="updated_at")

    write_stream(catalog, request("run-1"), [batch(range(10), day=3), batch(range(10, 20), day=5)], options)
    # Re-read from the boundary (day 5): ids 10-14 as they were, 15-16 changed in place at the same cursor
    # value (a late commit), and a new row beyond it.
    boundary = [batch(range(10, 15), day=5), batch([15, 16], "v2", day=5), batch([30], "new", day=6)]
    result = write_stream(catalog, request("run-2"), boundary, options)
    assert result.rows_written == 3
    if strategy == "merge_on_read":
        # Only the changed rows are written again, and only their old versions deleted.
        summary = catalog.load_table(TABLE).current_snapshot().summary
        assert int(summary["added-records"]) == 3
        assert int(summary["added-position-deletes"]) == 2
    expected = {i: f"v1-{i}" for i in range(20)} | {15: "v2-15", 16: "v2-16", 30: "new-30"}
    assert rows(catalog) == expected
    state = read_state(catalog, TABLE)
    assert state is not None
    assert state.cursor_value == datetime(2026, 1, 6, tzinfo=UTC)


def test_new_column_is_added(catalog: Catalog) -> None:
    write(catalog, [batch(range(3))], SyncMode.FULL_REFRESH)
    wider = SCHEMA.append(pa.field("country", pa.string()))
    extra = pa.record_batch([*batch([7]).columns, pa.array(["NL"])], schema=wider)
    write(catalog, [extra], SyncMode.INCREMENTAL_APPEND, run_id="run-2", schema=wider)
    table = catalog.load_table(TABLE)
    assert "country" in table.schema().column_names
    data = table.scan().to_arrow().sort_by("id")
    assert data["country"].to_pylist() == [None, None, None, "NL"]


def test_int_widens_to_long(catalog: Catalog) -> None:
    narrow = pa.schema([pa.field("id", pa.int32()), pa.field("updated_at", pa.timestamp("us", tz="UTC"))])
    one = pa.record_batch([pa.array([1], pa.int32()), pa.array([datetime(2026, 1, 1, tzinfo=UTC)])],
                          schema=narrow)
    write(catalog, [one], SyncMode.FULL_REFRESH, schema=narrow)
    assert str(catalog.load_table(TABLE).schema().find_field("id").field_type) == "int"
    write(catalog, [batch([2])], SyncMode.INCREMENTAL_APPEND, run_id="run-2")
    assert str(catalog.load_table(TABLE).schema().find_field("id").field_type) == "long"
    assert sorted(rows(catalog)) == [1, 2]


def test_incompatible_type_change_names_the_column(catalog: Catalog) -> None:
    write(catalog, [batch(range(3))], SyncMode.FULL_REFRESH)
    changed = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.int64()),
                         pa.field("updated_at", pa.timestamp("us", tz="UTC"))])
    bad = pa.record_batch([pa.array([9]), pa.array([42]), pa.array([datetime(2026, 1, 1, tzinfo=UTC)])],
                          schema=changed)
    with pytest.raises(ConfigError) as info:
        write(catalog, [bad], SyncMode.INCREMENTAL_APPEND, run_id="run-2", schema=changed)
    message = info.value.message
    assert "'name'" in message
    assert "string" in message
    assert "long" in message
    assert sorted(rows(catalog)) == [0, 1, 2]


def _home(catalog: Catalog) -> Path:
    uri = str(catalog.properties["uri"])
    return Path(uri.removeprefix("sqlite:///")).parent


def test_upsert_keeps_the_last_row_of_a_key_repeated_within_one_chunk(catalog: Catalog) -> None:
    write(catalog, [batch([1, 2], "v1"), batch([2], "v2", day=2), batch([2, 3], "v3", day=3)], SyncMode.INCREMENTAL)
    assert rows(catalog) == {1: "v1-1", 2: "v3-2", 3: "v3-3"}


def test_state_skips_snapshots_of_other_writers(catalog: Catalog) -> None:
    write(catalog, [batch(range(3), day=9)], SyncMode.INCREMENTAL_APPEND)
    # Someone else (compaction, a manual fix) commits after us without our summary keys.
    table = catalog.load_table(TABLE)
    table.append(pa.Table.from_batches([batch([50], day=1)]).cast(table.schema().as_arrow()))
    state = read_state(catalog, TABLE)
    assert state is not None
    assert state.cursor_value == datetime(2026, 1, 9, tzinfo=UTC)
    # A full refresh without a cursor is a Tidemark commit too: it resets the state.
    write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, run_id="run-3"), [batch([1])])
    assert read_state(catalog, TABLE) is None


def test_first_merge_of_unique_keys_into_an_empty_table_is_one_append(catalog: Catalog) -> None:
    request = WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, primary_key=["id"], run_id="run-1",
                           cursor_field="updated_at", unique_keys=True)
    first = write_stream(catalog, request, [batch(range(40), day=2), batch(range(40, 80), day=3)],
                         WriteOptions(chunk_bytes=512))
    table = catalog.load_table(TABLE)
    # Many chunks, yet one snapshot (an append: nothing to replace), as a full refresh would make.
    assert [s.summary.operation.value for s in table.snapshots()] == ["append"]
    assert first.rows_written == 80
    assert rows(catalog) == {i: f"v1-{i}" for i in range(80)}
    # The table now holds rows: the next run merges, whatever the keys.
    write_stream(catalog, replace(request, run_id="run-2"), [batch([5, 90], "v2", day=4)], WriteOptions())
    assert rows(catalog) == {i: f"v1-{i}" for i in range(80)} | {5: "v2-5", 90: "v2-90"}
    state = read_state(catalog, TABLE)
    assert state is not None
    assert state.cursor_value == datetime(2026, 1, 4, tzinfo=UTC)


def test_keys_that_may_repeat_still_merge_into_an_empty_table(catalog: Catalog) -> None:
    """Without the source's word that keys are unique, the later row of a key wins even on a first run."""
    write(catalog, [batch(range(5), "old", day=1), batch(range(3), "new", day=2)], SyncMode.INCREMENTAL,
          chunk_bytes=1)
    assert rows(catalog) == {0: "new-0", 1: "new-1", 2: "new-2", 3: "old-3", 4: "old-4"}
