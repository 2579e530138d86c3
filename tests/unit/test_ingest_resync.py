"""Resync of one stream: state reset, full read, table rewritten, incremental again afterwards."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tidemark.connectors.sql.sqlite import SQLiteConfig, SQLiteSource
from tidemark.events import DestinationSpec, StreamSpec, SyncMode
from tidemark.lakehouse import Lakehouse
from tidemark_cli.samples import SHOP as SAMPLE_DATABASE
from tidemark_ingest.worker.load import Progress, load_stream

pytestmark = pytest.mark.unit
DEST = DestinationSpec(namespace="resync")
STREAM = StreamSpec(name="main.orders", sync_mode=SyncMode.INCREMENTAL_APPEND, cursor_field="id")




def rows(lake: Lakehouse) -> list[int]:
    ids = lake.catalog.load_table("resync.orders").scan().to_arrow().column("id").to_pylist()
    return sorted(ids)


def test_resync_rewrites_the_table_and_resets_the_cursor(lake: Lakehouse, tmp_path: Path) -> None:
    db = tmp_path / "shop.sqlite"
    shutil.copy(SAMPLE_DATABASE, db)
    source = SQLiteSource(SQLiteConfig(path=str(db)))

    first = load_stream(lake, source, DEST, STREAM, "run-1", Progress())
    assert first.status == "succeeded", first.error
    assert first.rows_written == 1000
    assert (first.cursor_before, first.cursor_after) == (None, "1000")  # what jobs-svc shows per stream

    # Rows change behind the cursor: append-only cannot see that, a resync must.
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM orders WHERE id > 990")
        conn.execute("INSERT INTO orders SELECT id + 5000, customer_id, amount, status, paid, ordered_on, "
                     "updated_at FROM orders WHERE id <= 5")
    resync = load_stream(lake, source, DEST, STREAM, "run-2", Progress(), resync=True)
    assert resync.status == "succeeded", resync.error
    assert resync.rows_written == 995
    assert rows(lake) == [*range(1, 991), *range(5001, 5006)]
    state = lake.read_state(DEST, "resync.orders")
    assert state is not None
    assert state.cursor_value == 5005

    # Afterwards the stream is incremental again: only rows past the new cursor arrive.
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO orders SELECT 6000, customer_id, amount, status, paid, ordered_on, "
                     "updated_at FROM orders WHERE id = 1")
    after = load_stream(lake, source, DEST, STREAM, "run-3", Progress())
    assert after.rows_written == 1
    assert (after.cursor_before, after.cursor_after) == ("5005", "6000")
    assert rows(lake)[-1] == 6000
    assert len(rows(lake)) == 996
