"""`make bench-drift`: what schema-svc's poll costs on a source of 1,000 tables of 10 columns.

Creates a throw-away PostgreSQL database (the server of ``TIDEMARK_TEST_PG_URL``, else
127.0.0.1:5432 as ``postgres``), then times what a poll does through the shared connector code:
the fingerprint query alone when nothing changed, and fingerprint + full discover + diff when one
column changed. Round trips are the SQL statements the poll sends (a poll also opens one
connection). Environment: ``BENCH_TABLES`` (default 1000), ``BENCH_REPEATS`` (default 5; the
median is reported). The last line is machine-readable (``BENCH tables=...``).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from tidemark.connectors.diff import diff_catalogs
from tidemark.connectors.sql.postgres import PostgresConfig, PostgresSource
from tidemark_testing.postgres import admin_dsn, create_database, drop_database

TABLES = int(os.environ.get("BENCH_TABLES", "1000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
COLUMNS = 10


def log(message: str) -> None:
    print(f"[bench-drift] {message}", flush=True)


class Counting:
    """Counts statements sent by every psycopg cursor while active."""

    def __init__(self) -> None:
        self.statements = 0
        self._original: Callable[..., Any] = psycopg.Cursor.execute

    def __enter__(self) -> Counting:
        original, counter = self._original, self

        def execute(cursor: Any, *args: Any, **kwargs: Any) -> Any:
            counter.statements += 1
            return original(cursor, *args, **kwargs)

        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        psycopg.Cursor.execute = self._original  # type: ignore[method-assign]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def main() -> None:
    with admin_dsn() as admin:
        url = create_database(admin, "tidemark_bench_drift")
        try:
            run(url)
        finally:
            drop_database(admin, url)


def run(url: str) -> None:
    parsed = make_url(url)
    conninfo = f"host={parsed.host} port={parsed.port or 5432} user={parsed.username} dbname={parsed.database}"
    columns = ", ".join(["id INT PRIMARY KEY", *(f"c{i} VARCHAR(40)" for i in range(1, COLUMNS))])
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("; ".join(f"CREATE TABLE t{n:04d} ({columns})" for n in range(TABLES)))  # type: ignore[arg-type]
    log(f"{TABLES} tables of {COLUMNS} columns created in {parsed.database}")
    source = PostgresSource(PostgresConfig(host=parsed.host or "127.0.0.1", port=parsed.port or 5432,
                                           database=parsed.database or "", user=parsed.username or "postgres",
                                           schemas=["public"], tls_mode="disable"))
    known = source.fingerprint()
    before = source.discover()

    unchanged, trips = [], 0
    for _ in range(REPEATS):
        with Counting() as counting:
            ms, found = timed(source.fingerprint)
        assert found == known, "the fingerprint moved with no change"
        unchanged.append(ms)
        trips = counting.statements
    log(f"unchanged poll: {statistics.median(unchanged):.1f} ms median, {trips} statement(s)")

    changed = []
    for n in range(REPEATS):
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE t{n:04d} ALTER COLUMN c1 TYPE VARCHAR(80)")  # type: ignore[arg-type]

        def poll() -> int:
            fingerprint = source.fingerprint()
            assert fingerprint != known
            return len(diff_catalogs(before, source.discover()))

        ms, count = timed(poll)
        assert count == n + 1, count  # the tables altered so far, against the first catalog
        changed.append(ms)
    log(f"changed poll (fingerprint + discover + diff): {statistics.median(changed):.1f} ms median")
    print(f"BENCH tables={TABLES} unchanged_poll_ms={statistics.median(unchanged):.1f} "
          f"changed_poll_ms={statistics.median(changed):.1f} round_trips_unchanged={trips}", flush=True)


if __name__ == "__main__":
    main()
