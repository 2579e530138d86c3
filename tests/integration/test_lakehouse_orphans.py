"""Orphan cleanup after a killed run: the files the run wrote go, every file a snapshot references stays,
on local disk, S3 (moto) and Azure (Azurite); Parquet staging directories of killed runs go too."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pydantic import SecretStr

from tests.fixtures.independent_reader import duckdb_rows
from tidemark.events import SyncMode
from tidemark.lakehouse import LakehouseSettings, WriteRequest, open_catalog, write_stream
from tidemark.lakehouse.maintenance import CleanOptions, clean_orphans, clean_parquet_staging
from tidemark.lakehouse.parquet import ParquetLocation, write_parquet_stream
from tidemark.lakehouse.storage import list_files, warehouse_filesystem

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TABLE = "maint.items"
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("payload", pa.string())])
LATER = dt.datetime.now(dt.UTC) + dt.timedelta(days=4)


def revealed(value: Any) -> Any:
    """The settings as the child process needs them: secrets in clear (the JSON dump would mask them)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: revealed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [revealed(v) for v in value]
    return value


def files_under(settings: LakehouseSettings, location: str) -> set[str]:
    fs, root = warehouse_filesystem(settings, location)
    return {info.path for info in list_files(fs, root)}


def kill_after_files(settings: LakehouseSettings, location: str, parquet: bool = False) -> set[str]:
    """Start the endless writer, SIGKILL it once it has written data files; the paths it left."""
    before = files_under(settings, location)
    args = {"lakehouse": revealed(settings.model_dump()), "table": TABLE, "parquet": parquet}
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("killable_writer.py")),
                             json.dumps(args, default=str)], cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while len({p for p in files_under(settings, location) - before if p.endswith(".parquet")}) < 3:
            assert proc.poll() is None, f"the writer ended before it was killed: {proc.stderr.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the writer wrote no data files"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL
    return files_under(settings, location) - before


def rows(ids: range) -> pa.RecordBatch:
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array(["x"] * len(ids))], schema=SCHEMA)


def check_cleanup(settings: LakehouseSettings) -> None:
    catalog = open_catalog(settings)
    request = WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL_APPEND, run_id="run-1")
    write_stream(catalog, request, [rows(range(100))])
    write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL_APPEND, run_id="run-2"),
                 [rows(range(100, 200))])
    location = catalog.load_table(TABLE).location()
    left = kill_after_files(settings, location)
    committed = files_under(settings, location) - left
    assert catalog.load_table(TABLE).scan().to_arrow().num_rows == 200, "the killed run committed nothing"

    assert clean_orphans(catalog, settings, TABLE).files == [], "inside the safety window nothing goes"
    dry = clean_orphans(catalog, settings, TABLE, dry_run=True, now=LATER)
    assert set(dry.files) == left
    assert files_under(settings, location) >= left

    result = clean_orphans(catalog, settings, TABLE, now=LATER)
    assert set(result.files) == left
    assert result.bytes > 0
    assert files_under(settings, location) == committed, "every referenced file stays"
    table = catalog.load_table(TABLE)
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == list(range(200))
    if settings.warehouse.startswith("/") or settings.warehouse.startswith("file:"):
        assert sorted(r["id"] for r in duckdb_rows(table)) == list(range(200))


def test_killed_run_files_are_removed_on_local_disk(tmp_path: Path) -> None:
    check_cleanup(LakehouseSettings().resolve(tmp_path))


def test_killed_run_files_are_removed_on_s3(s3_lakehouse: LakehouseSettings) -> None:
    check_cleanup(s3_lakehouse)


def test_killed_run_files_are_removed_on_azure(azure_lakehouse: LakehouseSettings) -> None:
    check_cleanup(azure_lakehouse)


def test_the_window_never_drops_below_the_longest_run() -> None:
    assert CleanOptions(older_than=dt.timedelta(hours=1), longest_run=dt.timedelta(hours=6)).window == \
        dt.timedelta(hours=6)


def test_parquet_staging_of_a_killed_run_is_removed(tmp_path: Path) -> None:
    settings = LakehouseSettings().resolve(tmp_path)
    write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL_APPEND, run_id="run-1"),
                         [rows(range(100))])
    loc = ParquetLocation(settings, TABLE)
    data = loc.data_files()
    left = kill_after_files(settings, loc.staging_root, parquet=True)
    assert left
    assert all(p.startswith(f"{loc.staging_root}/{loc.name}-killed-run/") for p in left)

    assert clean_parquet_staging(settings, TABLE).files == []
    result = clean_parquet_staging(settings, TABLE, now=LATER)
    assert set(result.files) >= {p for p in left if p.endswith(".parquet")}
    assert files_under(settings, loc.staging_root) == set()
    assert loc.data_files() == data
