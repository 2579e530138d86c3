"""Awkward source names land in tables that every reader opens, one table per source table.

A PostgreSQL database with the same table name in two schemas, quotes, semicolons, slashes,
spaces, non-ASCII letters and dots in names; each table is loaded through the worker's path and
read back by pyiceberg and by an independent reader (DuckDB's iceberg extension)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.fixtures.independent_reader import duckdb_rows
from tidemark.connectors.sql.postgres import PostgresConfig, PostgresSource
from tidemark.events import DestinationSpec, StreamSpec, SyncMode
from tidemark.lakehouse import Lakehouse, table_identifier
from tidemark.lakehouse.naming import table_collisions
from tidemark.lakehouse.state import SOURCE_STREAM
from tidemark_ingest.worker.load import Progress, load_stream
from tidemark_testing.postgres import create_database, drop_database

pytestmark = pytest.mark.integration

STREAMS = [
    "public.y", "sales.y", 'sales.x"; DROP TABLE t; --', "sales.a/b", "sales.has space",
    "sales.Bestellungen-Österreich", "sales.数据", "sales.v1.2 data", "sales.2 data", 'Odd "Schema".Orders',
]
DEST = DestinationSpec(namespace="names")


@pytest.fixture(scope="module")
def awkward(pg_admin_dsn: str) -> Iterator[PostgresSource]:
    url = create_database(pg_admin_dsn, "tidemark_names")
    parsed = make_url(url)
    conninfo = f"host={parsed.host} port={parsed.port or 5432} user={parsed.username} dbname={parsed.database}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for stream in STREAMS:
            schema, _, table = stream.partition(".")
            name = sql.Identifier(schema, table)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, origin text NOT NULL)").format(name))
            # Each table holds rows naming itself, so an overwrite by another stream shows.
            conn.execute(sql.SQL("INSERT INTO {} VALUES (1, %s), (2, %s)").format(name), [stream, stream])
    try:
        yield PostgresSource(PostgresConfig(host=parsed.host, port=parsed.port or 5432, user=parsed.username,
                                            database=parsed.database))
    finally:
        drop_database(pg_admin_dsn, url)


def test_every_awkward_name_gets_its_own_table_that_every_reader_opens(
    lake: Lakehouse, awkward: PostgresSource,
) -> None:
    assert {s.name for s in awkward.discover().streams} == set(STREAMS)
    assert table_collisions(STREAMS) == []
    tables = set()
    for stream in STREAMS:
        spec = StreamSpec(name=stream, sync_mode=SyncMode.INCREMENTAL, cursor_field="id", primary_key=["id"])
        stats = load_stream(lake, awkward, DEST, spec, "names-run", Progress(),
                            properties={SOURCE_STREAM: stream})
        assert stats.status == "succeeded", stats.error
        assert stats.table == table_identifier(DEST, stream)
        tables.add(stats.table)
    assert len(tables) == len(STREAMS)
    for stream in STREAMS:
        table = lake.catalog.load_table(table_identifier(DEST, stream))
        expected: list[dict[str, Any]] = [{"id": 1, "origin": stream}, {"id": 2, "origin": stream}]
        assert sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"]) == expected
        assert duckdb_rows(table, order_by="id") == expected, stream
        assert table.properties[SOURCE_STREAM] == stream
        assert table.schema().identifier_field_ids == [table.schema().find_field("id").field_id]
        assert not set('" ;') & set(table.metadata_location)


def test_a_full_refresh_carries_the_sources_own_key(lake: Lakehouse, awkward: PostgresSource) -> None:
    dest = DestinationSpec(namespace="keys")
    stats = load_stream(lake, awkward, dest, StreamSpec(name="sales.y"), "keys-run", Progress())
    assert stats.status == "succeeded", stats.error
    schema = lake.catalog.load_table(stats.table).schema()
    assert [schema.find_column_name(i) for i in schema.identifier_field_ids] == ["id"]
    # Without the key among the loaded columns there is nothing to carry.
    narrow = load_stream(lake, awkward, DestinationSpec(namespace="narrow"),
                         StreamSpec(name="sales.y", columns=["origin"]), "keys-run", Progress())
    assert narrow.status == "succeeded", narrow.error
    assert lake.catalog.load_table(narrow.table).schema().identifier_field_ids == []
