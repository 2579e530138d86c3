"""The Redshift source against a real cluster, when ``TIDEMARK_TEST_REDSHIFT_URL`` names one.

``redshift://user:password@cluster.region.redshift.amazonaws.com:5439/dev``: a user that
may create schemas. Each run works in a fresh schema ``tidemark_src_*``, dropped after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
import pyarrow as pa
import pytest

from tidemark.connectors import get_connector
from tidemark.connectors.sql.redshift import RedshiftConfig, RedshiftSource
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec
from tidemark_testing.connector_contract import CONTRACT_ROWS, ContractTable, SourceContract

ENV = "TIDEMARK_TEST_REDSHIFT_URL"
pytestmark = pytest.mark.integration
needs_redshift = pytest.mark.skipif(not os.environ.get(ENV),
                                    reason=f"needs a Redshift cluster: set {ENV}=redshift://user:pw@host:5439/dev")


def _fields() -> dict[str, Any]:
    url = urlsplit(os.environ[ENV])
    return {"host": url.hostname or "", "port": url.port or 5439, "user": unquote(url.username or ""),
            "password": unquote(url.password or ""), "database": url.path.lstrip("/") or "dev"}


def _connect() -> psycopg.Connection[Any]:
    f = _fields()
    return psycopg.connect(host=f["host"], port=f["port"], user=f["user"], password=f["password"],
                           dbname=f["database"], sslmode="require", autocommit=True)


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    name = f"tidemark_src_{uuid.uuid4().hex[:12]}"
    with _connect() as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
        conn.execute(f'CREATE TABLE "{name}".contract (id INTEGER PRIMARY KEY, name VARCHAR(100), '
                     "amount NUMERIC(10, 2), updated_at TIMESTAMPTZ NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany(f'INSERT INTO "{name}".contract VALUES (%s, %s, %s, %s)',
                            [(r["id"], r["name"], r["amount"], r["updated_at"].replace(tzinfo=UTC))
                             for r in CONTRACT_ROWS])
        conn.execute(f'CREATE TABLE "{name}"."Order Items" (id BIGINT PRIMARY KEY, "select" SMALLINT, '
                     "num NUMERIC(38, 10), doc SUPER, raw VARBYTE(16), ts TIMESTAMP, flag BOOLEAN)")
        conn.execute(f'INSERT INTO "{name}"."Order Items" VALUES (1, 7, 12345.6789012345, '
                     "JSON_PARSE('{\"a\": [1, 2]}'), FROM_HEX('deadbeef'), '2024-01-01 12:00:00.123456', TRUE)")
        conn.execute(f'INSERT INTO "{name}"."Order Items" (id) VALUES (2)')
    try:
        yield name
    finally:
        with _connect() as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def source(schema: str, **overrides: Any) -> RedshiftSource:
    return RedshiftSource(RedshiftConfig(**(_fields() | {"schemas": [schema]} | overrides)))


@needs_redshift
class TestRedshiftContract(SourceContract):
    @pytest.fixture
    def contract_table(self, schema: str) -> ContractTable:
        return ContractTable(source=source(schema), stream=f"{schema}.contract")


@needs_redshift
def test_registry_knows_redshift() -> None:
    assert get_connector("redshift") is RedshiftSource


@needs_redshift
def test_redshift_types_round_trip(schema: str) -> None:
    src = source(schema)
    spec = StreamSpec(name=f"{schema}.Order Items")
    schema_ = src.arrow_schema(spec)
    assert schema_.field("doc").type == pa.string()
    assert schema_.field("raw").type == pa.binary()
    rows = sorted(pa.Table.from_batches(list(src.read(spec, None)), schema_).to_pylist(), key=lambda r: r["id"])
    assert rows[0] == {"id": 1, "select": 7, "num": Decimal("12345.6789012345"), "doc": '{"a":[1,2]}',
                       "raw": b"\xde\xad\xbe\xef", "ts": datetime(2024, 1, 1, 12, 0, 0, 123456), "flag": True}
    assert all(v is None for k, v in rows[1].items() if k != "id")


@needs_redshift
def test_wrong_password_and_missing_database(schema: str) -> None:
    with pytest.raises(SourceError) as caught:
        source(schema, password="wrong-password-for-sure").check()
    assert caught.value.kind is FailureKind.CONFIG
    assert "wrong-password-for-sure" not in caught.value.message
    with pytest.raises(SourceError) as caught:
        source(schema, database="tidemark_src_missing").check()
    assert caught.value.kind is FailureKind.CONFIG


# --------------------------------------------------------------------------- without a cluster
# Redshift's catalog views, shimmed on PostgreSQL: the connector's own code paths (connecting
# without startup options, reading svv_columns, streaming rows) run for real on every test run.

SHIMS = """
CREATE SCHEMA shim;
CREATE VIEW shim.svv_columns AS SELECT table_catalog, table_schema, table_name, column_name, ordinal_position,
    is_nullable, data_type, numeric_precision, numeric_scale FROM information_schema.columns;
CREATE VIEW shim.svv_tables AS SELECT table_catalog, table_schema, table_name, table_type
    FROM information_schema.tables;
CREATE VIEW shim.svv_table_info AS SELECT schemaname AS "schema", relname AS "table", n_live_tup AS tbl_rows
    FROM pg_stat_user_tables;
ALTER DATABASE {db} SET search_path = public, shim;
CREATE SCHEMA data;
CREATE TABLE data.contract (id integer PRIMARY KEY, name varchar(100), amount numeric(10, 2),
                            updated_at timestamptz NOT NULL);
"""


@pytest.fixture(scope="module")
def shimmed(pg_admin_dsn: str) -> Iterator[dict[str, Any]]:
    from sqlalchemy.engine import make_url

    from tidemark_testing.postgres import create_database, drop_database

    url = create_database(pg_admin_dsn, "tidemark_src")
    parsed = make_url(url)
    fields: dict[str, Any] = {"host": parsed.host or "127.0.0.1", "port": parsed.port or 5432,
                              "user": parsed.username or "postgres", "database": parsed.database or "",
                              "tls_mode": "disable"}
    with psycopg.connect(host=fields["host"], port=fields["port"], user=fields["user"], dbname=fields["database"],
                         autocommit=True) as conn:
        conn.execute(SHIMS.format(db=f'"{fields["database"]}"').encode())
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO data.contract VALUES (%s, %s, %s, %s)",
                            [(r["id"], r["name"], r["amount"], r["updated_at"].replace(tzinfo=UTC))
                             for r in CONTRACT_ROWS])
    try:
        yield fields
    finally:
        drop_database(pg_admin_dsn, url)


class TestRedshiftCodeOnPostgresShims(SourceContract):
    @pytest.fixture
    def contract_table(self, shimmed: dict[str, Any]) -> ContractTable:
        return ContractTable(source=RedshiftSource(RedshiftConfig(**shimmed, schemas=["data"])),
                             stream="data.contract")
