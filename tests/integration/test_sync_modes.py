"""Each sync mode end to end over a real database: scripted inserts, updates and late commits
between runs, loaded by the worker's own loading code into Iceberg, compared row by row."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pymysql
import pytest
from sqlalchemy.engine import make_url

from tidemark.connectors import Source
from tidemark.connectors.sql.mysql import MySQLConfig, MySQLSource
from tidemark.connectors.sql.postgres import PostgresConfig, PostgresSource
from tidemark.events import DestinationSpec, StreamSpec, SyncMode
from tidemark.lakehouse import Lakehouse, table_identifier
from tidemark_ingest.worker.load import Progress, load_stream
from tidemark_testing.postgres import create_database, drop_database

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 1, tzinfo=UTC)
Row = tuple[str, int, str, Decimal, datetime]


@dataclass
class Backend:
    """One source database with an `events` table keyed by (region, id)."""

    name: str
    stream: str
    execute: Callable[[str, list[tuple[Any, ...]] | None], None]
    fetch: Callable[[], list[Row]]
    source: Callable[[], Source]


PG_TABLE = """CREATE TABLE events (region text NOT NULL, id integer NOT NULL, body text,
    amount numeric(12, 2), updated_at timestamptz NOT NULL, PRIMARY KEY (region, id))"""
MY_TABLE = """CREATE TABLE events (region varchar(8) NOT NULL, id integer NOT NULL, body text,
    amount decimal(12, 2), updated_at datetime(6) NOT NULL, PRIMARY KEY (region, id))"""


@pytest.fixture(scope="module")
def postgres(pg_admin_dsn: str) -> Iterator[Backend]:
    url = create_database(pg_admin_dsn, "tidemark_modes")
    parsed = make_url(url)
    conninfo = f"host={parsed.host} port={parsed.port or 5432} user={parsed.username} dbname={parsed.database}"
    conn = psycopg.connect(conninfo, autocommit=True)
    conn.execute(PG_TABLE)

    def execute(sql: str, rows: list[tuple[Any, ...]] | None) -> None:
        with conn.cursor() as cur:
            if rows is None:
                cur.execute(sql.encode())
            else:
                cur.executemany(sql.encode(), rows)

    def fetch() -> list[Row]:
        query = "SELECT region, id, body, amount, updated_at FROM events"
        return [(r[0], r[1], r[2], r[3], utc(r[4])) for r in conn.execute(query)]

    def source() -> Source:
        return PostgresSource(PostgresConfig(host=parsed.host or "127.0.0.1", port=parsed.port or 5432,
                                             user=parsed.username or "postgres", database=parsed.database or ""))

    try:
        yield Backend("postgres", "public.events", execute, fetch, source)
    finally:
        conn.close()
        drop_database(pg_admin_dsn, url)


@pytest.fixture(scope="module")
def mariadb() -> Iterator[Backend]:
    name = f"tidemark_modes_{uuid.uuid4().hex[:10]}"
    params: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
    conn = pymysql.connect(**params, autocommit=True, init_command="SET time_zone = '+00:00'")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"USE `{name}`")
        cur.execute(MY_TABLE)

    def execute(sql: str, rows: list[tuple[Any, ...]] | None) -> None:
        with conn.cursor() as cur:
            if rows is None:
                cur.execute(sql)
            else:
                cur.executemany(sql, [tuple(v.replace(tzinfo=None) if isinstance(v, datetime) else v
                                            for v in r) for r in rows])

    def fetch() -> list[Row]:
        with conn.cursor() as cur:
            cur.execute("SELECT region, id, body, amount, updated_at FROM events")
            return [(r[0], r[1], r[2], r[3], utc(r[4])) for r in cur.fetchall()]

    def source() -> Source:
        return MySQLSource(MySQLConfig(**params, database=name))

    try:
        yield Backend("mariadb", f"{name}.events", execute, fetch, source)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture(params=["postgres", "mariadb"])
def backend(request: pytest.FixtureRequest) -> Backend:
    db: Backend = request.getfixturevalue(request.param)
    db.execute("DELETE FROM events", None)
    return db




INSERT = "INSERT INTO events (region, id, body, amount, updated_at) VALUES (%s, %s, %s, %s, %s)"
DEST = DestinationSpec(namespace="modes")


def new_rows(first: int, count: int, at: datetime, region: str = "eu") -> list[Row]:
    return [(region, i, f"body {i} ünïcödé", Decimal(f"{i}.{i % 100:02d}"), at + timedelta(seconds=i - first))
            for i in range(first, first + count)]


def utc(value: datetime) -> datetime:
    """MariaDB DATETIME has no zone (Arrow gets a naive timestamp); compare both as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def table_rows(lake: Lakehouse, stream: str) -> list[Row]:
    data = lake.catalog.load_table(table_identifier(DEST, stream)).scan().to_arrow()
    columns = (data.column(c).to_pylist() for c in ("region", "id", "body", "amount", "updated_at"))
    return sorted((r[0], r[1], r[2], r[3], utc(r[4])) for r in zip(*columns, strict=True))


def run(lake: Lakehouse, backend: Backend, stream: StreamSpec, run_id: str) -> int:
    stats = load_stream(lake, backend.source(), DEST, stream, run_id, Progress())
    assert stats.status == "succeeded", stats.error
    return stats.rows_written


def test_incremental_merges_inserts_updates_and_late_commits(lake: Lakehouse, backend: Backend) -> None:
    stream = StreamSpec(name=backend.stream, sync_mode=SyncMode.INCREMENTAL, cursor_field="updated_at",
                        primary_key=["region", "id"], lookback=120)
    backend.execute(INSERT, new_rows(1, 100, T0))
    backend.execute(INSERT, new_rows(1, 5, T0, region="us"))  # same ids, other region: a composite key
    run(lake, backend, stream, "run-1")
    assert table_rows(lake, backend.stream) == sorted(backend.fetch())

    later = T0 + timedelta(minutes=10)
    backend.execute("UPDATE events SET body = 'changed', amount = 0.5, updated_at = %s WHERE region = %s AND id = %s",
                    [(later + timedelta(seconds=i), "eu", i) for i in range(1, 11)])
    backend.execute(INSERT, new_rows(101, 20, later + timedelta(seconds=30)))
    run(lake, backend, stream, "run-2")
    assert table_rows(lake, backend.stream) == sorted(backend.fetch())

    # A transaction that began before run 2 read its cursor commits afterwards: its rows carry a
    # cursor value below run 2's high-water mark, but within the lookback.
    high_water = later + timedelta(seconds=49)
    backend.execute(INSERT, [("eu", 500, "late", Decimal("5.00"), high_water - timedelta(seconds=60))])
    run(lake, backend, stream, "run-3")
    expected = sorted(backend.fetch())
    assert table_rows(lake, backend.stream) == expected
    assert ("eu", 500, "late", Decimal("5.00"), high_water - timedelta(seconds=60)) in expected

    # Nothing changed: re-reading the lookback window merges onto the same rows, no duplicates.
    run(lake, backend, stream, "run-4")
    assert table_rows(lake, backend.stream) == expected
    keys = [(r[0], r[1]) for r in table_rows(lake, backend.stream)]
    assert len(keys) == len(set(keys))


def test_append_only_holds_every_new_row_once(lake: Lakehouse, backend: Backend) -> None:
    stream = StreamSpec(name=backend.stream, sync_mode=SyncMode.INCREMENTAL_APPEND, cursor_field="id")
    backend.execute(INSERT, new_rows(1, 100, T0))
    assert run(lake, backend, stream, "run-1") == 100
    backend.execute(INSERT, new_rows(101, 30, T0 + timedelta(hours=1)))
    assert run(lake, backend, stream, "run-2") == 30
    assert run(lake, backend, stream, "run-3") == 0
    assert table_rows(lake, backend.stream) == sorted(backend.fetch())
    ids = [r[1] for r in table_rows(lake, backend.stream)]
    assert ids == list(range(1, 131))


def test_full_refresh_replaces_the_table(lake: Lakehouse, backend: Backend) -> None:
    stream = StreamSpec(name=backend.stream, sync_mode=SyncMode.FULL_REFRESH)
    backend.execute(INSERT, new_rows(1, 50, T0))
    assert run(lake, backend, stream, "run-1") == 50
    backend.execute("DELETE FROM events WHERE id <= %s", [(10,)])
    backend.execute("UPDATE events SET body = 'changed' WHERE id = %s", [(20,)])
    assert run(lake, backend, stream, "run-2") == 40
    assert table_rows(lake, backend.stream) == sorted(backend.fetch())


def shuffled_rows(ids: list[int], start: datetime, rng: random.Random) -> list[Row]:
    """Rows whose cursor follows neither the key nor the insertion (physical) order; a few share a value."""
    offsets = [rng.randrange(0, len(ids) // 2) for _ in ids]
    rows = [("eu", i, f"body {i}", Decimal(f"{i}.50"), start + timedelta(seconds=o))
            for i, o in zip(ids, offsets, strict=True)]
    rng.shuffle(rows)
    return rows


def committed_cursor(lake: Lakehouse, stream: str) -> datetime:
    state = lake.read_state(DEST, table_identifier(DEST, stream))
    assert state is not None
    assert isinstance(state.cursor_value, datetime)
    return utc(state.cursor_value)


def test_unordered_cursor_incremental_then_nothing_changed(lake: Lakehouse, backend: Backend) -> None:
    """Reads no longer ask for the cursor's order: the committed cursor is the largest value read,
    whatever order the rows come in; a run after no change commits nothing."""
    rng = random.Random(13)
    stream = StreamSpec(name=backend.stream, sync_mode=SyncMode.INCREMENTAL, cursor_field="updated_at",
                        primary_key=["region", "id"], lookback=5)
    backend.execute(INSERT, shuffled_rows(list(range(1, 301)), T0, rng))
    run(lake, backend, stream, "run-1")
    assert table_rows(lake, backend.stream) == sorted(backend.fetch())
    assert committed_cursor(lake, backend.stream) == max(r[4] for r in backend.fetch())

    later = T0 + timedelta(hours=1)
    changed = rng.sample(range(1, 301), 30)
    backend.execute("UPDATE events SET body = 'changed', updated_at = %s WHERE region = %s AND id = %s",
                    [(later + timedelta(seconds=rng.randrange(100)), "eu", i) for i in changed])
    backend.execute(INSERT, shuffled_rows(list(range(301, 341)), later, rng))
    run(lake, backend, stream, "run-2")
    assert table_rows(lake, backend.stream) == sorted(backend.fetch())
    assert committed_cursor(lake, backend.stream) == max(r[4] for r in backend.fetch())

    # Nothing changed: the re-read boundary and lookback window hold only rows the table has as they are.
    table = lake.catalog.load_table(table_identifier(DEST, backend.stream))
    before = table.current_snapshot()
    assert before is not None
    files = {task.file.file_path for task in table.scan().plan_files()}
    assert run(lake, backend, stream, "run-3") == 0
    table = lake.catalog.load_table(table_identifier(DEST, backend.stream))
    after = table.current_snapshot()
    assert after is not None
    assert after.snapshot_id == before.snapshot_id
    assert {task.file.file_path for task in table.scan().plan_files()} == files
    assert table_rows(lake, backend.stream) == sorted(backend.fetch())


def test_unordered_cursor_append_only(lake: Lakehouse, backend: Backend) -> None:
    rng = random.Random(29)
    stream = StreamSpec(name=backend.stream, sync_mode=SyncMode.INCREMENTAL_APPEND, cursor_field="updated_at")
    backend.execute(INSERT, shuffled_rows(list(range(1, 201)), T0, rng))
    assert run(lake, backend, stream, "run-1") == 200
    assert committed_cursor(lake, backend.stream) == max(r[4] for r in backend.fetch())
    backend.execute(INSERT, shuffled_rows(list(range(201, 261)), T0 + timedelta(hours=1), rng))
    assert run(lake, backend, stream, "run-2") == 60
    assert run(lake, backend, stream, "run-3") == 0
    assert table_rows(lake, backend.stream) == sorted(backend.fetch())
    assert committed_cursor(lake, backend.stream) == max(r[4] for r in backend.fetch())
