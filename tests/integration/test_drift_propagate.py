"""`propagate` on real PostgreSQL and MariaDB: after a column is added and an int widened to bigint
in the source, the pipeline's next run evolves the Iceberg table and it matches the source again,
row by row, old rows and new ones."""

from __future__ import annotations

from typing import Any

import psycopg
import pymysql  # type: ignore[import-untyped]
import pytest

from tests.fixtures.drift import MYSQL, SourceDb
from tidemark.connectors import Source, get_connector
from tidemark.connectors.diff import diff_catalogs
from tidemark.events import DestinationSpec, StreamSpec, SyncMode
from tidemark.lakehouse import Lakehouse, table_identifier
from tidemark_ingest.worker.load import Progress, load_stream

pytestmark = pytest.mark.integration

DEST = DestinationSpec(namespace="propagate")
WIDEN = {"postgres": "ALTER TABLE orders ALTER COLUMN amount TYPE BIGINT",
         "mariadb": "ALTER TABLE orders MODIFY amount BIGINT"}


def open_source(db: SourceDb) -> Source:
    source_type = get_connector(db.connector_type)
    return source_type(source_type.config_model.model_validate(db.config))


def source_rows(db: SourceDb) -> list[tuple[Any, ...]]:
    query = "SELECT id, amount, note, coupon FROM orders ORDER BY id"
    if db.kind == "postgres":
        c = db.config
        with psycopg.connect(host=c["host"], port=c["port"], user=c["user"], dbname=c["database"]) as conn:
            return [tuple(r) for r in conn.execute(query).fetchall()]
    with pymysql.connect(**MYSQL, database=db.config["database"]) as conn, conn.cursor() as cur:
        cur.execute(query)
        return [tuple(r) for r in cur.fetchall()]


def table_rows(lake: Lakehouse, stream: str) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    table = lake.catalog.load_table(table_identifier(DEST, stream))
    data = table.scan().to_arrow().sort_by("id")
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    return [tuple(r.values()) for r in data.select(["id", "amount", "note", "coupon"]).to_pylist()], types


def load(lake: Lakehouse, db: SourceDb, stream: StreamSpec, run_id: str) -> None:
    stats = load_stream(lake, open_source(db), DEST, stream, run_id, Progress())
    assert stats.status == "succeeded", stats.error


def test_the_next_run_after_a_propagated_change_matches_the_source_row_by_row(
    source_db: SourceDb, lake: Lakehouse
) -> None:
    db = source_db
    db.execute("CREATE TABLE orders (id INT PRIMARY KEY, amount INT, note VARCHAR(40))")
    db.execute("INSERT INTO orders VALUES (1, 10, 'first'), (2, 20, 'second')")
    stream = StreamSpec(name=db.stream("orders"), sync_mode=SyncMode.INCREMENTAL, cursor_field="id",
                        primary_key=["id"])
    before = open_source(db).discover()
    load(lake, db, stream, "run-1")

    db.execute("ALTER TABLE orders ADD COLUMN coupon VARCHAR(20)")
    db.execute(WIDEN[db.kind])
    db.execute("INSERT INTO orders VALUES (3, 5000000000, 'third', 'SAVE10')")
    changes = diff_catalogs(before, open_source(db).discover())
    assert sorted((c.kind, c.column, c.type_change) for c in changes) == [
        ("column_added", "coupon", None), ("type_changed", "amount", "widening")]

    load(lake, db, stream, "run-2")
    rows, types = table_rows(lake, db.stream("orders"))
    assert rows == source_rows(db)
    assert rows[-1] == (3, 5_000_000_000, "third", "SAVE10")
    assert (types["amount"], types["coupon"]) == ("long", "string")
