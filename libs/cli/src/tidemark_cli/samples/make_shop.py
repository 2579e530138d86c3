"""Regenerate the bundled sample database: ``uv run python -m tidemark_cli.samples.make_shop``.

Deterministic, so the committed file only changes when this script does.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

TARGET = Path(__file__).resolve().parent / "shop.sqlite"


def build(path: Path = TARGET) -> None:
    path.unlink(missing_ok=True)
    rng = random.Random(42)  # noqa: S311 - sample data
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE customers (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, country TEXT,
            created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
        );
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
            amount NUMERIC(12, 2) NOT NULL, status TEXT NOT NULL, paid BOOLEAN NOT NULL,
            ordered_on DATE NOT NULL, updated_at TIMESTAMP NOT NULL
        );
        """
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    countries = ["DE", "FR", "NL", "US", "JP", "BR", "ZA"]
    for i in range(1, 201):
        ts = (start + timedelta(hours=i)).isoformat()
        conn.execute(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)",
            (i, f"Customer {i}", f"c{i}@example.com" if i % 9 else None, rng.choice(countries), ts, ts),
        )
    statuses = ["placed", "shipped", "delivered", "returned"]
    for i in range(1, 1001):
        at = start + timedelta(minutes=37 * i)
        conn.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)",
            (i, rng.randint(1, 200), f"{rng.uniform(3, 900):.2f}", rng.choice(statuses), rng.random() > 0.1,
             at.date().isoformat(), at.isoformat()),
        )
    conn.commit()
    conn.execute("VACUUM")
    conn.close()


if __name__ == "__main__":
    build()
