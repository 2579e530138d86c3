"""Snapshot expiry: old snapshots go with the files only they held; the snapshot holding the cursor
state stays, so the next incremental run reads from the right cursor; readers still see the table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from tests.fixtures.independent_reader import duckdb_rows
from tidemark.events import SyncMode
from tidemark.lakehouse import LakehouseSettings, WriteRequest, open_catalog, read_state, write_stream
from tidemark.lakehouse.maintenance import ExpireOptions, compact_table, expire_snapshots

pytestmark = pytest.mark.unit

TABLE = "ns.events"
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("at", pa.int64())])
LATER = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)


def batch(ids: list[int], at: int) -> pa.RecordBatch:
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array([at] * len(ids), pa.int64())], schema=SCHEMA)


def write(catalog: Catalog, mode: SyncMode, ids: list[int], at: int, run: str) -> None:
    key = ["id"] if mode is SyncMode.INCREMENTAL else []
    write_stream(catalog, WriteRequest(TABLE, SCHEMA, mode, key, run, cursor_field="at"), [batch(ids, at)])


def ids(catalog: Catalog) -> list[int]:
    return sorted(catalog.load_table(TABLE).scan().to_arrow()["id"].to_pylist())


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog(LakehouseSettings().resolve(tmp_path))


def test_expiry_keeps_the_state_snapshot_behind_other_writers_commits(catalog: Catalog) -> None:
    write(catalog, SyncMode.FULL_REFRESH, [1, 2], 1, "run-1")
    first_files = {t.file.file_path for t in catalog.load_table(TABLE).scan().plan_files()}
    write(catalog, SyncMode.FULL_REFRESH, [1, 2, 3], 2, "run-2")  # replaces run-1's files
    for run in range(3, 6):
        write(catalog, SyncMode.INCREMENTAL, [run * 10], run, f"run-{run}")
    state_id = catalog.load_table(TABLE).current_snapshot().snapshot_id  # type: ignore[union-attr]
    # Another tool appends 12 times: its snapshots carry no Tidemark state, and they are the newest.
    for n in range(12):
        catalog.load_table(TABLE).append(pa.table(batch([100 + n], 0)))
    assert len(catalog.load_table(TABLE).metadata.snapshots) == 17

    dry = expire_snapshots(catalog, TABLE, ExpireOptions(keep_last=10), dry_run=True, now=LATER)
    assert len(dry.expired) == 4
    assert dry.state_snapshot_id == state_id
    assert len(catalog.load_table(TABLE).metadata.snapshots) == 17, "a dry run changes nothing"

    result = expire_snapshots(catalog, TABLE, ExpireOptions(keep_last=10), now=LATER)
    table = catalog.load_table(TABLE)
    kept = {s.snapshot_id for s in table.metadata.snapshots}
    assert state_id in kept
    assert len(kept) == 13, "the 12 newest and the state snapshot they sit on"
    assert result.expired == dry.expired
    assert result.snapshots_after == 13
    assert all(not Path(p.removeprefix("file://")).exists() for p in first_files), "run-1's replaced files go"
    assert result.files_deleted >= len(first_files)
    state = read_state(catalog, TABLE)
    assert state is not None
    assert state.cursor_value == 5
    expected = [1, 2, 3, 30, 40, 50, *range(100, 112)]
    assert ids(catalog) == expected
    assert sorted(r["id"] for r in duckdb_rows(table)) == expected

    # The next incremental run starts from that cursor and merges on top.
    write(catalog, SyncMode.INCREMENTAL, [50, 60], state.cursor_value + 1, "run-6")
    assert ids(catalog) == sorted([*expected, 60])
    assert read_state(catalog, TABLE).cursor_value == 6  # type: ignore[union-attr]


def test_recent_snapshots_and_the_last_n_stay(catalog: Catalog) -> None:
    for run in range(1, 8):
        write(catalog, SyncMode.INCREMENTAL, [run], run, f"run-{run}")
    assert expire_snapshots(catalog, TABLE).expired == [], "all are younger than 7 days"
    result = expire_snapshots(catalog, TABLE, ExpireOptions(keep_last=3), now=LATER)
    assert len(result.expired) == 4
    assert result.snapshots_after == 3
    assert ids(catalog) == list(range(1, 8))


def test_expiry_after_compaction_leaves_a_table_duckdb_reads(catalog: Catalog) -> None:
    for run in range(1, 8):
        write(catalog, SyncMode.INCREMENTAL, [run, run + 1], run, f"run-{run}")
    compact_table(catalog, TABLE)
    result = expire_snapshots(catalog, TABLE, ExpireOptions(keep_last=1), now=LATER)
    table = catalog.load_table(TABLE)
    assert len(table.metadata.snapshots) == 1
    assert result.files_deleted > 0
    assert sorted(r["id"] for r in duckdb_rows(table)) == list(range(1, 9))
    assert read_state(catalog, TABLE).cursor_value == 7  # type: ignore[union-attr]
