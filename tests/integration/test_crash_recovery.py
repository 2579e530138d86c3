"""SIGKILL the writer in the middle of a run: the table is unchanged, the next run completes,
and no row is duplicated or lost."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tidemark.connectors.sql.postgres import PostgresConfig, PostgresSource
from tidemark.events import DestinationSpec, StreamSpec, SyncMode
from tidemark.lakehouse import Lakehouse
from tidemark.lakehouse.settings import LakehouseSettings
from tidemark_ingest.worker.load import Progress, load_stream
from tidemark_testing.postgres import create_database, drop_database

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TABLE = "crash.items"


@pytest.fixture(scope="module")
def pg(pg_admin_dsn: str) -> Iterator[dict[str, Any]]:
    url = create_database(pg_admin_dsn, "tidemark_crash")
    parsed = make_url(url)
    config = {"host": parsed.host, "port": parsed.port or 5432, "user": parsed.username,
              "database": parsed.database, "batch_size": 2_000}
    conninfo = f"host={parsed.host} port={config['port']} user={parsed.username} dbname={parsed.database}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, payload text NOT NULL)")
    try:
        yield {"config": config, "conninfo": conninfo}
    finally:
        drop_database(pg_admin_dsn, url)


def insert(pg: dict[str, Any], first: int, last: int) -> None:
    with psycopg.connect(pg["conninfo"], autocommit=True) as conn:
        conn.execute("INSERT INTO items SELECT g, repeat(md5(g::text), 8) "
                     "FROM generate_series(%s::bigint, %s::bigint) g", (first, last))


def data_files(warehouse: Path) -> set[Path]:
    return set(warehouse.rglob("*.parquet"))


def kill_mid_run(pg: dict[str, Any], lake: LakehouseSettings, warehouse: Path, stream: StreamSpec) -> None:
    before = data_files(warehouse)
    args = {"source": pg["config"], "stream": stream.model_dump(mode="json"), "table": TABLE,
            "lakehouse": lake.model_dump(mode="json"), "run_id": "killed-run"}
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("crash_writer.py")), json.dumps(args)],
                            cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while len(data_files(warehouse) - before) < 3:
            assert proc.poll() is None, f"the writer ended before it was killed: {proc.stderr.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the writer wrote no data files"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL


def ids(lake: Lakehouse) -> list[int]:
    return sorted(lake.catalog.load_table(TABLE).scan(selected_fields=("id",)).to_arrow().column("id").to_pylist())


@pytest.mark.parametrize("mode", [SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL_APPEND, SyncMode.INCREMENTAL])
def test_killed_run_leaves_the_table_and_the_next_run_completes(
    pg: dict[str, Any], tmp_path: Path, mode: SyncMode
) -> None:
    with psycopg.connect(pg["conninfo"], autocommit=True) as conn:
        conn.execute("TRUNCATE items")
    settings = LakehouseSettings().resolve(tmp_path)
    warehouse = tmp_path / "warehouse"
    lake = Lakehouse(settings)
    stream = StreamSpec(name="public.items", sync_mode=mode,
                        cursor_field=None if mode is SyncMode.FULL_REFRESH else "id",
                        primary_key=["id"] if mode is SyncMode.INCREMENTAL else [])
    destination = DestinationSpec(namespace="crash")
    source = PostgresSource(PostgresConfig(**pg["config"]))
    try:
        insert(pg, 1, 5_000)
        first = load_stream(lake, source, destination, stream, "run-1", Progress())
        assert first.status == "succeeded", first.error
        table = lake.catalog.load_table(TABLE)
        snapshot = table.current_snapshot()
        assert snapshot is not None

        insert(pg, 5_001, 60_000)
        kill_mid_run(pg, settings, warehouse, stream)

        table = lake.catalog.load_table(TABLE)
        assert table.current_snapshot() == snapshot, "a killed run must not commit"
        assert ids(lake) == list(range(1, 5_001))
        state = lake.read_state(destination, TABLE)
        if mode is not SyncMode.FULL_REFRESH:
            assert state is not None
            assert state.cursor_value == 5_000

        again = load_stream(lake, source, destination, stream, "run-3", Progress())
        assert again.status == "succeeded", again.error
        assert ids(lake) == list(range(1, 60_001)), "every row exactly once"
    finally:
        source.close()
        if lake._catalog is not None:
            lake.catalog.engine.dispose()  # type: ignore[attr-defined]
