"""The SQLite source's fingerprint: unchanged until the schema changes, whatever the rows do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tidemark.connectors.sql.sqlite.source import SQLiteConfig, SQLiteSource

pytestmark = pytest.mark.unit


def test_the_fingerprint_moves_with_the_schema_not_with_the_data(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INT DEFAULT 0)")
    source = SQLiteSource(SQLiteConfig(path=str(path)))
    first = source.fingerprint()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO orders VALUES (1, 10)")
    assert source.fingerprint() == first
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE orders ADD COLUMN note TEXT")
    second = source.fingerprint()
    assert second != first
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE refunds (id INTEGER PRIMARY KEY)")
    assert source.fingerprint() not in (first, second)
    [orders] = [s for s in source.discover().streams if s.name == "main.orders"]
    assert [(c.name, c.default) for c in orders.columns] == [("id", None), ("amount", "0"), ("note", None)]
