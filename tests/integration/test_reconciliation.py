"""Every stream is reconciled before its commit: the rows the source held in the read's snapshot,
the rows read and the rows committed must agree, or the stream fails with the numbers and its
table stays as it was. Faults are injected between the reader and the writer (a pipeline stage
that loses batches) and inside the reader and the writer, over real PostgreSQL and MariaDB."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pymysql
import pytest
from sqlalchemy.engine import make_url

from tidemark.connectors import Source
from tidemark.connectors.sql.mysql import MySQLConfig, MySQLSource
from tidemark.connectors.sql.postgres import PostgresConfig, PostgresSource
from tidemark.events import DestinationSpec, StreamSpec, StreamStats, SyncMode
from tidemark.lakehouse import Lakehouse, table_identifier
from tidemark.lakehouse import iceberg as iceberg_writer
from tidemark.lakehouse.parquet import ParquetLocation
from tidemark.lakehouse.settings import LakehouseSettings
from tidemark_ingest.worker import load
from tidemark_ingest.worker.load import Progress, load_stream
from tidemark_testing.postgres import create_database, drop_database

pytestmark = pytest.mark.integration

ROWS = 1_000
BATCH = 100  # ten batches: room to lose one


@dataclass
class Backend:
    """A source database with an `items` table (id, body); ``source(engine)`` reads it one way."""

    name: str
    stream: str
    execute: Callable[[str], None]
    source: Callable[[str], Source]
    engines: tuple[str, ...]


@pytest.fixture(scope="module")
def postgres(pg_admin_dsn: str) -> Iterator[Backend]:
    url = create_database(pg_admin_dsn, "tidemark_reconcile")
    parsed = make_url(url)
    conn = psycopg.connect(f"host={parsed.host} port={parsed.port or 5432} user={parsed.username} "
                           f"dbname={parsed.database}", autocommit=True)
    conn.execute("CREATE TABLE items (id integer PRIMARY KEY, body text)")

    def source(engine: str) -> Source:
        return PostgresSource(PostgresConfig(host=parsed.host or "127.0.0.1", port=parsed.port or 5432,
                                             user=parsed.username or "postgres", database=parsed.database or "",
                                             engine=engine, batch_size=BATCH))

    try:
        yield Backend("postgres", "public.items", lambda sql: conn.execute(sql.encode()), source,
                      ("adbc", "psycopg"))
    finally:
        conn.close()
        drop_database(pg_admin_dsn, url)


@pytest.fixture(scope="module")
def mariadb() -> Iterator[Backend]:
    name = f"tidemark_reconcile_{uuid.uuid4().hex[:8]}"
    params: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
    conn = pymysql.connect(**params, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"CREATE TABLE `{name}`.items (id integer PRIMARY KEY, body text)")

    def execute(sql: str) -> None:
        with conn.cursor() as cur:
            cur.execute(f"USE `{name}`")
            cur.execute(sql)

    def source(engine: str) -> Source:
        return MySQLSource(MySQLConfig(**params, database=name, columnar=engine == "columnar", batch_size=BATCH))

    try:
        yield Backend("mariadb", f"{name}.items", execute, source, ("columnar", "pymysql"))
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


ENGINES = [("postgres", "adbc"), ("postgres", "psycopg"), ("mariadb", "columnar"), ("mariadb", "pymysql")]


@pytest.fixture(params=ENGINES, ids=[f"{db}-{engine}" for db, engine in ENGINES])
def reader(request: pytest.FixtureRequest) -> tuple[Backend, str]:
    db, engine = request.param
    backend: Backend = request.getfixturevalue(db)
    backend.execute("DELETE FROM items")
    insert(backend, 1, ROWS)
    return backend, engine


def insert(backend: Backend, first: int, count: int) -> None:
    values = ", ".join(f"({i}, 'body {i}')" for i in range(first, first + count))
    backend.execute(f"INSERT INTO items (id, body) VALUES {values}")


DEST = DestinationSpec(namespace="reconcile")


def table_count(lake: Lakehouse, stream: str) -> int:
    return lake.catalog.load_table(table_identifier(DEST, stream)).scan().to_arrow().num_rows


def table_rows(lake: Lakehouse, stream: str) -> list[tuple[int, str]]:
    data = lake.catalog.load_table(table_identifier(DEST, stream)).scan().to_arrow()
    return sorted(zip(data.column("id").to_pylist(), data.column("body").to_pylist(), strict=True))


def snapshot(lake: Lakehouse, stream: str) -> int | None:
    current = lake.catalog.load_table(table_identifier(DEST, stream)).current_snapshot()
    return None if current is None else current.snapshot_id


def spec(backend: Backend, mode: SyncMode) -> StreamSpec:
    if mode is SyncMode.FULL_REFRESH:
        return StreamSpec(name=backend.stream, sync_mode=mode)
    return StreamSpec(name=backend.stream, sync_mode=mode, cursor_field="id", primary_key=["id"])


def loses_a_batch(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """A pipeline stage with a bug: it drops the third batch."""
    for n, batch in enumerate(batches):
        if n != 2:
            yield batch


def assert_failed_with_both_numbers(stats: StreamStats, read: int, committed: int) -> None:
    assert stats.status == "failed"
    assert stats.error is not None
    assert stats.error.kind == "terminal"
    assert str(read) in stats.error.message, stats.error.message
    assert str(committed) in stats.error.message, stats.error.message
    assert "nothing was committed" in stats.error.message
    counts = stats.reconciliation
    assert counts is not None
    assert not counts.ok
    assert counts.rows_read == read
    assert counts.rows_committed == committed


def test_a_normal_run_reports_its_reconciled_counts(lake: Lakehouse, reader: tuple[Backend, str]) -> None:
    backend, engine = reader
    stats = load_stream(lake, backend.source(engine), DEST, spec(backend, SyncMode.FULL_REFRESH), "run-1", Progress())
    assert stats.status == "succeeded", stats.error
    counts = stats.reconciliation
    assert counts is not None
    assert counts.ok
    # The source's own count, taken in the read's snapshot, is there for every SQL read path.
    assert (counts.source_rows, counts.rows_read, counts.rows_committed, counts.table_rows) == (ROWS,) * 4
    assert stats.rows_read == stats.rows_written == ROWS
    # Counting rides along with the rows on some paths: the rows themselves are untouched.
    assert table_rows(lake, backend.stream) == [(i, f"body {i}") for i in range(1, ROWS + 1)]


def test_rows_committed_by_others_during_a_read_are_in_neither_its_count_nor_its_rows(
        lake: Lakehouse, reader: tuple[Backend, str]) -> None:
    """The count and the rows come from one snapshot: rows another client commits right after the
    count (before the rows are read, where the read paths allow a hook) change neither, so a
    busy source never fails a run, and a count taken outside the snapshot would have. On PostgreSQL
    the hook runs between the count and the read; MariaDB's columnar path hands the count over with its
    first batch, so there the insert lands mid-read."""
    backend, engine = reader
    source = backend.source(engine)

    class InsertAfterCount(dict[str, int]):
        def __setitem__(self, key: str, value: int) -> None:
            super().__setitem__(key, value)
            insert(backend, ROWS + 1, 50)

    source.snapshot_counts = InsertAfterCount()
    stats = load_stream(lake, source, DEST, spec(backend, SyncMode.FULL_REFRESH), "run-1", Progress())
    assert stats.status == "succeeded", stats.error
    assert stats.reconciliation is not None
    assert stats.reconciliation.source_rows == ROWS
    assert table_count(lake, backend.stream) == ROWS


@pytest.mark.parametrize("mode", [SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL_APPEND, SyncMode.INCREMENTAL])
def test_rows_lost_between_reader_and_writer_fail_the_stream_and_commit_nothing(
        lake: Lakehouse, postgres: Backend, mode: SyncMode, monkeypatch: pytest.MonkeyPatch) -> None:
    postgres.execute("DELETE FROM items")
    insert(postgres, 1, ROWS)
    stream = spec(postgres, mode)
    first = load_stream(lake, postgres.source("adbc"), DEST, stream, "run-1", Progress())
    assert first.status == "succeeded", first.error
    before = snapshot(lake, postgres.stream)
    insert(postgres, ROWS + 1, ROWS)

    real = load.prefetched
    monkeypatch.setattr(load, "prefetched", lambda items: loses_a_batch(real(items)))
    stats = load_stream(lake, postgres.source("adbc"), DEST, stream, "run-2", Progress())

    # Full refresh reads both thousands, an append the new one, a merge also the boundary row again.
    read = {SyncMode.FULL_REFRESH: 2 * ROWS, SyncMode.INCREMENTAL_APPEND: ROWS, SyncMode.INCREMENTAL: ROWS + 1}[mode]
    assert_failed_with_both_numbers(stats, read=read, committed=read - BATCH)
    assert snapshot(lake, postgres.stream) == before
    assert table_count(lake, postgres.stream) == ROWS


def test_a_reader_that_loses_rows_fails_against_the_sources_own_count(
        lake: Lakehouse, reader: tuple[Backend, str]) -> None:
    """The peer tool's failure: the driver path returns fewer rows than the table holds. Only the
    source's count in the same snapshot can tell; the stream fails and nothing is committed."""
    backend, engine = reader
    source = backend.source(engine)
    assert isinstance(source, PostgresSource | MySQLSource)
    real = source.execute
    source.execute = lambda plan: loses_a_batch(real(plan))  # type: ignore[method-assign]
    stats = load_stream(lake, source, DEST, spec(backend, SyncMode.FULL_REFRESH), "run-1", Progress())

    assert stats.status == "failed"
    assert stats.error is not None
    assert f"held {ROWS} rows in the read's snapshot but {ROWS - BATCH} were read" in stats.error.message
    counts = stats.reconciliation
    assert counts is not None
    assert not counts.ok
    assert (counts.source_rows, counts.rows_read) == (ROWS, ROWS - BATCH)
    # A first run that fails leaves no table behind.
    assert not lake.catalog.table_exists(table_identifier(DEST, backend.stream))


def test_rows_lost_inside_the_writer_fail_the_full_refresh(
        lake: Lakehouse, postgres: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    postgres.execute("DELETE FROM items")
    insert(postgres, 1, ROWS)
    real = iceberg_writer.chunks

    def short_chunks(batches: Iterable[pa.RecordBatch], max_bytes: int,
                     max_rows: int | None = None) -> Iterator[list[pa.RecordBatch]]:
        for group in real(batches, max_bytes, max_rows):
            yield group[:-1] if len(group) > 1 else group

    monkeypatch.setattr(iceberg_writer, "chunks", short_chunks)
    stats = load_stream(lake, postgres.source("adbc"), DEST, spec(postgres, SyncMode.FULL_REFRESH), "run-1",
                        Progress())
    assert_failed_with_both_numbers(stats, read=ROWS, committed=ROWS - BATCH)


def test_the_parquet_destination_reconciles_too(
        tmp_path: Any, postgres: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    postgres.execute("DELETE FROM items")
    insert(postgres, 1, ROWS)
    lake = Lakehouse(LakehouseSettings().resolve(tmp_path))
    dest = DestinationSpec(namespace="reconcile", kind="parquet")
    stream = spec(postgres, SyncMode.FULL_REFRESH)
    good = load_stream(lake, postgres.source("adbc"), dest, stream, "run-1", Progress())
    assert good.status == "succeeded"
    assert good.reconciliation is not None
    assert good.reconciliation.ok
    assert good.reconciliation.table_rows == ROWS

    real = load.prefetched
    monkeypatch.setattr(load, "prefetched", lambda items: loses_a_batch(real(items)))
    location = ParquetLocation(lake.settings, table_identifier(dest, postgres.stream))
    files = location.data_files()
    stats = load_stream(lake, postgres.source("adbc"), dest, stream, "run-2", Progress())
    assert_failed_with_both_numbers(stats, read=ROWS, committed=ROWS - BATCH)
    assert location.data_files() == files  # the previous files stay the table
    assert sum(pq.read_metadata(f, filesystem=location.fs).num_rows for f in files) == ROWS
