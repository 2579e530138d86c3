"""Hostile identifiers on the real PostgreSQL and MariaDB: tables and columns named like SQL injections
(`x"; DROP TABLE y; --`, its backtick twin, `%s` and `%(p0)s` driver placeholders) are discovered,
loaded by full refresh and incrementally on a hostile cursor column, fingerprinted and polled by
schema-svc, and nothing else in the database is touched."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.fixtures.drift import DriftPlatform, SourceDb
from tidemark.connectors import get_connector
from tidemark.connectors.sql.source import SqlSource
from tidemark.events import DestinationSpec, StreamSpec, SyncMode
from tidemark.lakehouse import Lakehouse
from tidemark.lakehouse.naming import table_collisions
from tidemark_ingest.worker.load import Progress, load_stream

pytestmark = pytest.mark.integration

TABLES = ['x"; DROP TABLE y; --', "x`; DROP TABLE y; -- %s", "x]; DROP TABLE y; -- %(p0)s"]
CURSOR = 'c"; DROP TABLE y; --`%s'
LABEL = "l`]; DROP TABLE y; %(p0)s"
ADDED = 'n"`; DROP TABLE y; --'


def quote(db: SourceDb, name: str) -> str:
    """The test's own quoting (the source must not need it from anyone)."""
    if db.kind == "postgres":
        return '"' + name.replace('"', '""') + '"'
    return "`" + name.replace("`", "``") + "`"


def hostile_tables(db: SourceDb) -> None:
    db.execute("CREATE TABLE y (id INT PRIMARY KEY)")
    db.execute("INSERT INTO y VALUES (1)")
    for table in TABLES:
        db.execute(f"CREATE TABLE {quote(db, table)} (id INT PRIMARY KEY, {quote(db, CURSOR)} INT NOT NULL, "
                   f"{quote(db, LABEL)} VARCHAR(40))")
        db.execute(f"INSERT INTO {quote(db, table)} VALUES (1, 10, 'one'), (2, 20, 'two')")


def source_of(db: SourceDb, **extra: Any) -> SqlSource:
    kind = get_connector(db.connector_type)
    source = kind(kind.config_model.model_validate({**db.config, **extra}))
    assert isinstance(source, SqlSource)
    return source


def rows(lake: Lakehouse, table: str) -> list[dict[str, Any]]:
    return sorted(lake.catalog.load_table(table).scan().to_arrow().to_pylist(), key=lambda r: r["id"])


def test_hostile_names_are_loaded_as_tables_and_nothing_is_dropped(source_db: SourceDb, lake: Lakehouse) -> None:
    db = source_db
    hostile_tables(db)
    source = source_of(db)
    streams = [db.stream(t) for t in TABLES]
    found = {s.name: s for s in source.discover().streams}
    assert set(streams) <= set(found)
    assert [c.name for c in found[streams[0]].columns] == ["id", CURSOR, LABEL]
    assert CURSOR in found[streams[0]].cursor_candidates
    assert table_collisions(streams) == []

    for stream in streams:
        full = load_stream(lake, source, DestinationSpec(namespace="full"), StreamSpec(name=stream), "run-1",
                           Progress())
        assert full.status == "succeeded", full.error
        assert rows(lake, full.table) == [{"id": 1, CURSOR: 10, LABEL: "one"}, {"id": 2, CURSOR: 20, LABEL: "two"}]

        spec = StreamSpec(name=stream, sync_mode=SyncMode.INCREMENTAL, cursor_field=CURSOR, primary_key=["id"])
        dest = DestinationSpec(namespace="incr")
        first = load_stream(lake, source, dest, spec, "run-2", Progress())
        assert (first.status, first.rows_read) == ("succeeded", 2), first.error
        db.execute(f"INSERT INTO {quote(db, stream.split('.', 1)[1])} VALUES (3, 30, 'three')")
        db.execute(f"UPDATE {quote(db, stream.split('.', 1)[1])} SET {quote(db, LABEL)} = 'TWO', "
                   f"{quote(db, CURSOR)} = 25 WHERE id = 2")
        second = load_stream(lake, source, dest, spec, "run-3", Progress())
        # `cursor >= 20` bound as a parameter: rows 2 (now 25) and 3, nothing older.
        assert (second.status, second.rows_read) == ("succeeded", 2), second.error
        assert rows(lake, second.table) == [{"id": 1, CURSOR: 10, LABEL: "one"}, {"id": 2, CURSOR: 25, LABEL: "TWO"},
                                            {"id": 3, CURSOR: 30, LABEL: "three"}]
    # The victim table is still there, row and all.
    victim = source_of(db)
    assert db.stream("y") in {s.name for s in victim.discover().streams}
    assert load_stream(lake, victim, DestinationSpec(namespace="victim"), StreamSpec(name=db.stream("y")),
                       "run-4", Progress()).rows_read == 1


def test_the_fingerprint_scoped_to_hostile_tables_sees_their_changes(source_db: SourceDb) -> None:
    db = source_db
    hostile_tables(db)
    scoped = source_of(db, tables=[db.stream(TABLES[0])])
    before = scoped.fingerprint()
    assert before is not None
    assert scoped.fingerprint() == before
    db.execute(f"ALTER TABLE {quote(db, TABLES[1])} ADD COLUMN {quote(db, ADDED)} INT")
    assert scoped.fingerprint() == before  # another table changed, out of scope
    db.execute(f"ALTER TABLE {quote(db, TABLES[0])} ADD COLUMN {quote(db, ADDED)} INT")
    assert scoped.fingerprint() != before
    assert ADDED in scoped.discover().streams[0].column_names()


async def test_schema_svc_polls_hostile_tables(source_db: SourceDb, drift_platform: DriftPlatform) -> None:
    db, api = source_db, drift_platform.api
    await asyncio.to_thread(hostile_tables, db)
    created = await api.post("/v1/connections", json={"name": "hostile", "type": db.connector_type,
                                                       "config": db.config})
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    deadline = asyncio.get_running_loop().time() + 15
    while not (await api.get(f"/v1/schemas/connections/{cid}/history")).json():
        assert asyncio.get_running_loop().time() < deadline, "no first snapshot"
        await asyncio.sleep(0.2)
    await asyncio.to_thread(db.execute, f"ALTER TABLE {quote(db, TABLES[0])} ADD COLUMN {quote(db, ADDED)} INT")
    changed = (await api.post(f"/v1/schemas/connections/{cid}/refresh")).json()
    assert changed["outcome"] == "changed", changed
    assert [(c["kind"], c["stream"], c["column"]) for c in changed["drift"]["changes"]] == [
        ("column_added", db.stream(TABLES[0]), ADDED)]
    assert (await api.post(f"/v1/schemas/connections/{cid}/refresh")).json()["outcome"] == "unchanged"
    victim = await asyncio.to_thread(lambda: db.stream("y") in {s.name for s in source_of(db).discover().streams})
    assert victim
