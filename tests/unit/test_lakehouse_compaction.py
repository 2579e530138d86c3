"""Compaction: after many incremental merges the table keeps the same rows in far fewer files with no
delete files; the cursor stays readable; a compaction racing an ingestion commit loses nothing."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from tests.fixtures.independent_reader import duckdb_rows
from tidemark.errors import TransientError
from tidemark.events import PartitionField, SyncMode
from tidemark.lakehouse import LakehouseSettings, WriteOptions, WriteRequest, open_catalog, read_state, write_stream
from tidemark.lakehouse.maintenance import CompactOptions, compact_table, plan_compaction, run_compaction
from tidemark.lakehouse.maintenance.health import table_health

pytestmark = pytest.mark.unit

TABLE = "ns.orders"
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("v", pa.string()), pa.field("at", pa.int64())])
Rows = dict[int, tuple[str, int]]
# The issue asks for 200 merges; each merge costs time in proportion to the snapshots before it (pyiceberg
# copies the metadata and walks every manifest), so 200 take minutes here. The suite runs 40; set
# TIDEMARK_TEST_MERGES=200 for the full count.
MERGES = int(os.environ.get("TIDEMARK_TEST_MERGES", "40")) // 10 * 10


def batch(rows: Rows) -> pa.RecordBatch:
    ids = sorted(rows)
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array([rows[i][0] for i in ids]),
                            pa.array([rows[i][1] for i in ids], pa.int64())], schema=SCHEMA)


def merge(catalog: Catalog, rows: Rows, run: str) -> None:
    write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, ["id"], run, cursor_field="at"),
                 [batch(rows)])


def table_rows(catalog: Catalog) -> Rows:
    data = catalog.load_table(TABLE).scan().to_arrow().to_pylist()
    assert len({r["id"] for r in data}) == len(data), "a key appears twice"
    return {r["id"]: (r["v"], r["at"]) for r in data}


def counts(catalog: Catalog) -> tuple[int, int]:
    tasks = list(catalog.load_table(TABLE).scan().plan_files())
    return len(tasks), len({d.file_path for t in tasks for d in t.delete_files})


def merge_runs(catalog: Catalog, changes: list[Rows], run: str) -> None:
    """One run whose rows arrive as ``changes``, merged one chunk each: a snapshot per chunk."""
    batches = [batch(rows) for rows in changes]
    write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, ["id"], run, cursor_field="at"),
                 batches, WriteOptions(chunk_bytes=min(b.nbytes for b in batches)))


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Catalog, Rows]]:
    """200 incremental merge-on-read merges into one table, and the source the table must equal.

    Changes cluster on recent keys, as in an orders table: each merge inserts a key and updates the two
    inserted just before it; every tenth updates three of the first keys instead. 20 runs of 10 chunks
    each: every chunk is its own merge snapshot with its own delete files, as in 200 runs, while the
    table is planned 20 times instead of 200 (planning grows with the manifests)."""
    catalog = open_catalog(LakehouseSettings().resolve(tmp_path_factory.mktemp("merged")))
    rng = random.Random(14)
    source: Rows = {i: (f"v{i}", 0) for i in range(200)}
    merge(catalog, source, "run-0")
    merges = 0
    for run in range(1, MERGES // 10 + 1):
        changes = []
        for _ in range(10):
            merges += 1
            if merges % 10 == 0:
                keys = rng.sample(range(200), 3)
            else:
                keys = [k for k in (1000 + merges - 2, 1000 + merges - 1, 1000 + merges) if k in source or
                        k == 1000 + merges]
            changed = {k: (f"r{merges}-{k}", merges) for k in keys}
            source.update(changed)
            changes.append(changed)
        merge_runs(catalog, changes, f"run-{run}")
    assert len(catalog.load_table(TABLE).metadata.snapshots) == MERGES + 1
    return catalog, source


def test_compaction_after_many_merges_keeps_every_row_in_few_files_without_deletes(
        merged: tuple[Catalog, Rows]) -> None:
    catalog, source = merged
    files_before, deletes_before = counts(catalog)
    assert files_before > MERGES // 2, "the merges should have left many small files"
    assert deletes_before > MERGES // 2, "and many delete files"
    assert table_rows(catalog) == source

    dry = compact_table(catalog, TABLE, dry_run=True)
    assert dry.dry_run
    assert dry.files_rewritten == files_before
    assert dry.delete_files_folded == deletes_before
    assert counts(catalog) == (files_before, deletes_before), "a dry run changes nothing"

    result = compact_table(catalog, TABLE)
    assert not result.abandoned
    assert result.snapshot_id is not None
    assert counts(catalog) == (1, 0)
    assert (result.data_files_after, result.delete_files_after) == (1, 0)
    assert table_rows(catalog) == source
    state = read_state(catalog, TABLE)
    assert state is not None
    assert state.cursor_value == MERGES
    summary = catalog.load_table(TABLE).current_snapshot().summary  # type: ignore[union-attr]
    assert summary["tidemark.run-id"] == f"run-{MERGES // 10}"
    assert summary["tidemark.maintenance"] == "compact"
    by_duckdb = {r["id"]: (r["v"], r["at"]) for r in duckdb_rows(catalog.load_table(TABLE))}
    assert by_duckdb == source
    health = table_health(catalog, TABLE)
    assert (health.data_files, health.delete_files) == (1, 0)
    assert health.last_compaction is not None
    assert compact_table(catalog, TABLE).snapshot_id is None, "nothing left to compact"


@pytest.fixture
def small(tmp_path: Path) -> tuple[Catalog, Rows]:
    catalog = open_catalog(LakehouseSettings().resolve(tmp_path))
    source: Rows = {i: (f"v{i}", 0) for i in range(50)}
    merge(catalog, source, "run-0")
    for run in range(1, 8):
        changed = {run: (f"r{run}", run), 100 + run: (f"n{run}", run)}
        source.update(changed)
        merge(catalog, changed, f"run-{run}")
    return catalog, source


def test_an_ingestion_commit_after_the_compaction_plan_is_kept(small: tuple[Catalog, Rows]) -> None:
    catalog, source = small
    table = catalog.load_table(TABLE)
    plan = plan_compaction(table, TABLE, CompactOptions(min_small_files=2))
    assert not plan.empty
    # The ingestion commits while the compaction is under way (planned, not yet committed), and touches
    # rows of the planned files: the compaction must not bring the old versions back.
    changed = {1: ("late", 50), 2: ("late2", 50), 500: ("late-new", 50)}
    source.update(changed)
    merge(catalog, changed, "run-late")

    result = run_compaction(catalog, table, plan, CompactOptions(min_small_files=2))
    assert result.attempts == 2, "the first attempt conflicts, the second plans again from the fresh table"
    assert not result.abandoned
    assert table_rows(catalog) == source
    assert counts(catalog)[1] == 0
    state = read_state(catalog, TABLE)
    assert state is not None
    assert state.cursor_value == 50, "the cursor of the later ingestion"


def test_an_append_after_the_compaction_plan_commutes(tmp_path: Path) -> None:
    catalog = open_catalog(LakehouseSettings().resolve(tmp_path))
    request = WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL_APPEND, run_id="a", cursor_field="at")
    rows: Rows = {}
    for run in range(6):
        part = {run * 10 + i: (f"v{run}", run) for i in range(10)}
        rows.update(part)
        write_stream(catalog, WriteRequest(**{**request.__dict__, "run_id": f"run-{run}"}), [batch(part)])
    table = catalog.load_table(TABLE)
    plan = plan_compaction(table, TABLE, CompactOptions(min_small_files=2))
    late = {900: ("late", 9)}
    rows.update(late)
    write_stream(catalog, WriteRequest(**{**request.__dict__, "run_id": "run-late"}), [batch(late)])

    result = run_compaction(catalog, table, plan, CompactOptions(min_small_files=2))
    assert result.attempts == 1, "an append does not conflict"
    assert result.snapshot_id is not None
    assert table_rows(catalog) == rows
    assert counts(catalog)[0] == 2, "the compacted file and the late append"
    state = read_state(catalog, TABLE)
    assert state is not None
    assert state.cursor_value == 9, "the compaction carries the late append's cursor"


def test_an_ingestion_that_loses_the_race_to_a_compaction_fails_transiently_and_its_retry_lands(
        small: tuple[Catalog, Rows]) -> None:
    catalog, source = small
    changed = {3: ("racing", 60), 600: ("racing-new", 60)}

    def rows_then_compaction() -> Iterator[pa.RecordBatch]:
        yield batch(changed)
        # The ingestion has planned its merge; the compaction commits before it does.
        assert compact_table(catalog, TABLE, CompactOptions(min_small_files=2)).snapshot_id is not None

    with pytest.raises(TransientError, match="another writer committed first"):
        write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, ["id"], "run-race", cursor_field="at"),
                     rows_then_compaction())
    assert table_rows(catalog) == source, "the failed ingestion left nothing half-done"
    state = read_state(catalog, TABLE)
    assert state is not None
    assert state.cursor_value == 7, "the cursor is the last committed run's"

    merge(catalog, changed, "run-race-retry")  # the orchestrator retries the run
    source.update(changed)
    assert table_rows(catalog) == source
    state = read_state(catalog, TABLE)
    assert state is not None
    assert state.cursor_value == 60


def test_a_partitioned_table_is_compacted_partition_by_partition(tmp_path: Path) -> None:
    catalog = open_catalog(LakehouseSettings().resolve(tmp_path))
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("region", pa.string()), pa.field("at", pa.int64())])
    expected = []
    for run in range(6):
        ids = list(range(run * 10, run * 10 + 10))
        regions = ["eu" if i % 2 else "us" for i in ids]
        expected += list(zip(ids, regions, strict=True))
        data = pa.record_batch([pa.array(ids, pa.int64()), pa.array(regions), pa.array([run] * 10, pa.int64())],
                               schema=schema)
        write_stream(catalog, WriteRequest(TABLE, schema, SyncMode.INCREMENTAL_APPEND, run_id=f"run-{run}",
                                           cursor_field="at", partition=[PartitionField(column="region")]), [data])
    assert counts(catalog) == (12, 0)

    result = compact_table(catalog, TABLE, CompactOptions(min_small_files=2))
    table = catalog.load_table(TABLE)
    tasks = list(table.scan().plan_files())
    assert sorted(t.file.partition[0] for t in tasks) == ["eu", "us"], "one file per partition"
    assert (result.data_files_before, result.data_files_after) == (12, 2)
    got = table.scan().to_arrow()
    assert sorted(zip(got["id"].to_pylist(), got["region"].to_pylist(), strict=True)) == sorted(expected)
    assert read_state(catalog, TABLE).cursor_value == 5  # type: ignore[union-attr]


def test_a_write_reports_the_tables_files_for_the_compaction_decision(tmp_path: Path) -> None:
    catalog = open_catalog(LakehouseSettings().resolve(tmp_path))
    request = WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, ["id"], "run-1", cursor_field="at")
    first = write_stream(catalog, request, [batch({1: ("a", 1), 2: ("b", 1)})])
    assert (first.data_files, first.delete_files) == (1, 0)
    second = write_stream(catalog, request, [batch({2: ("c", 2), 3: ("d", 2)})])
    assert (second.data_files, second.delete_files) == (2, 1), "merge-on-read: a new file and a delete file"
    health = table_health(catalog, TABLE)
    assert second.files_bytes == health.data_bytes + health.delete_bytes
