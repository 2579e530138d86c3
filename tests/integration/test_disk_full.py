"""The warehouse's disk fills up in the middle of a write (a real ENOSPC: the warehouse is a small
tmpfs): the stream fails with an error that says so, the table keeps its last snapshot and rows, and
every file the table references is one that was there before (the new run's files are not referenced;
any left on disk are orphans, which maintenance's orphan cleanup removes)."""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidemark.connectors.sql.sqlite import SQLiteConfig, SQLiteSource
from tidemark.events import DestinationSpec, StreamSpec, SyncMode
from tidemark.lakehouse import Lakehouse
from tidemark.lakehouse.settings import LakehouseSettings
from tidemark_ingest.worker.load import Progress, load_stream

pytestmark = pytest.mark.integration
TABLE = "full.items"  # from the stream main.items (SQLite's default schema is dropped)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs for the warehouse (mounting needs root, which the test machines have)."""
    mount = tmp_path / "warehouse"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here to fill up (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def source_with(path: Path, rows: int) -> SQLiteSource:
    """``rows`` rows of 3 KB that do not compress: 1,000 of them fill the disk."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        db.execute("DELETE FROM items")
        db.executemany("INSERT INTO items VALUES (?, ?)",
                       [(i, base64.b64encode(os.urandom(2_250)).decode()) for i in range(1, rows + 1)])
    return SQLiteSource(SQLiteConfig(path=str(path)))


def referenced(lake: Lakehouse) -> set[str]:
    table = lake.catalog.load_table(TABLE)
    return {task.file.file_path for task in table.scan().plan_files()}


# Full refresh and append write data files then commit once; incremental merges chunk by chunk in one transaction.
@pytest.mark.parametrize("mode", [SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL])
def test_a_full_disk_fails_the_run_with_a_clear_error_and_leaves_the_table(
    tmp_path: Path, small_disk: Path, mode: SyncMode
) -> None:
    settings = LakehouseSettings(catalog_uri=f"sqlite:///{tmp_path / 'catalog.db'}",
                                 warehouse=f"file://{small_disk}")
    lake = Lakehouse(settings)
    incremental = mode is SyncMode.INCREMENTAL
    stream = StreamSpec(name="main.items", sync_mode=mode, cursor_field="id" if incremental else None,
                        primary_key=["id"] if incremental else [])
    destination = DestinationSpec(namespace="full")
    try:
        first = load_stream(lake, source_with(tmp_path / "src.db", 50), destination, stream, "run-1", Progress())
        assert first.status == "succeeded", first.error
        table = lake.catalog.load_table(TABLE)
        snapshot, files = table.current_snapshot(), referenced(lake)

        failed = load_stream(lake, source_with(tmp_path / "src.db", 2_000), destination, stream, "run-2", Progress())
        assert failed.status == "failed"
        assert failed.error is not None
        assert "no space left on device" in failed.error.message.lower(), failed.error.message
        assert lake.catalog.load_table(TABLE).current_snapshot() == snapshot, "nothing was committed"
        assert referenced(lake) == files, "only the files of the last good run are referenced"
        assert all(Path(f.removeprefix("file://")).exists() for f in files)
        rows = lake.catalog.load_table(TABLE).scan(selected_fields=("id",)).to_arrow().column("id").to_pylist()
        assert sorted(rows) == list(range(1, 51))
    finally:
        lake.close()
