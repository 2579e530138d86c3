"""The Amazon Redshift source: the PostgreSQL protocol (psycopg), Redshift's own catalog.

Redshift speaks the PostgreSQL wire protocol but not ``COPY ... TO STDOUT``, so rows are
streamed with libpq's chunked mode. Its catalog lives in ``svv_columns``/``svv_tables``
(which also cover late-binding views and external tables) and its types include SUPER,
VARBYTE, GEOMETRY and HLLSKETCH. No Redshift is reachable from the development machines:
the SQL and the mapping are unit-tested, and the integration suite runs against a real
cluster whenever ``TIDEMARK_TEST_REDSHIFT_URL`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import psycopg
import pyarrow as pa
from pydantic import Field

from tidemark.connectors.base import ConnectorConfig, KeyRange
from tidemark.connectors.sql import fingerprint
from tidemark.connectors.sql.arrow import default_converter, rows_to_batch
from tidemark.connectors.sql.config import SqlConfig, TlsMode
from tidemark.connectors.sql.plan import Dialect, ReadPlan, integer_ranges
from tidemark.connectors.sql.postgres.config import libpq_params
from tidemark.connectors.sql.postgres.errors import translate
from tidemark.connectors.sql.postgres.read import register_infinity_loaders
from tidemark.connectors.sql.postgres.source import PostgresDialect
from tidemark.connectors.sql.source import SqlSource
from tidemark.connectors.sql.tables import SqlColumn, SqlTable
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec
from tidemark.logs import fields

log = logging.getLogger("tidemark.connectors")

MAX_PROBED_TABLES = 200
# Below this many rows a table is read in one go: splitting costs more than it saves.
MIN_SPLIT_ROWS = 1_000_000

_NATIVE: dict[str, pa.DataType] = {
    "smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(),
    "real": pa.float32(), "double precision": pa.float64(), "boolean": pa.bool_(),
    "character": pa.string(), "character varying": pa.string(), '"char"': pa.string(), "char": pa.string(),
    "name": pa.string(), "text": pa.string(), "bpchar": pa.string(),
    "date": pa.date32(), "time without time zone": pa.time64("us"),
    "timestamp without time zone": pa.timestamp("us"), "timestamp with time zone": pa.timestamp("us", tz="UTC"),
}
_EXPRESSIONS: dict[str, tuple[pa.DataType, str]] = {
    "super": (pa.string(), "JSON_SERIALIZE({})"),
    "varbyte": (pa.binary(), "TO_HEX({})"),
    "binary varying": (pa.binary(), "TO_HEX({})"),
    "geometry": (pa.string(), "ST_AsText({})"),
    "geography": (pa.string(), "ST_AsText({})"),
    "time with time zone": (pa.string(), "CAST({} AS VARCHAR)"),
    "interval year to month": (pa.string(), "CAST({} AS VARCHAR)"),
    "interval day to second": (pa.string(), "CAST({} AS VARCHAR)"),
}

COLUMNS_SQL = """
SELECT c.table_schema, c.table_name, t.table_type, c.column_name, c.is_nullable, c.data_type,
       c.numeric_precision, c.numeric_scale
FROM svv_columns c
JOIN svv_tables t ON t.table_catalog = c.table_catalog AND t.table_schema = c.table_schema
                 AND t.table_name = c.table_name
WHERE c.table_catalog = current_database()
  AND c.table_schema NOT IN ('pg_catalog', 'information_schema', 'pg_internal', 'pg_automv', 'pg_auto_copy')
  AND left(c.table_schema, 8) <> 'pg_temp_'{filters}
ORDER BY c.table_schema, c.table_name, c.ordinal_position
"""

KEYS_SQL = """
SELECT k.table_schema, k.table_name, k.column_name
FROM information_schema.table_constraints tc
JOIN information_schema.key_column_usage k ON k.constraint_schema = tc.constraint_schema
     AND k.constraint_name = tc.constraint_name AND k.table_name = tc.table_name
WHERE tc.constraint_type = 'PRIMARY KEY'
ORDER BY k.table_schema, k.table_name, k.ordinal_position
"""

ROWS_SQL = 'SELECT tbl_rows FROM svv_table_info WHERE "schema" = %s AND "table" = %s'


def map_type(data_type: str, precision: int | None, scale: int | None) -> tuple[pa.DataType, str, str | None]:
    """``(arrow type, select expression, warning)`` for an ``svv_columns.data_type``."""
    dt = data_type.lower()
    if dt in ("numeric", "decimal"):
        return pa.decimal128(precision or 18, scale or 0), "{}", None
    if dt in _NATIVE:
        return _NATIVE[dt], "{}", None
    if dt in _EXPRESSIONS:
        typ, select = _EXPRESSIONS[dt]
        return typ, select, None
    return pa.string(), "CAST({} AS VARCHAR)", f"unsupported type {data_type}: read as text"


def declared(data_type: str, precision: int | None, scale: int | None) -> str:
    if data_type.lower() in ("numeric", "decimal"):
        return f"numeric({precision or 18},{scale or 0})"
    return data_type


def catalog_filters(config: SqlConfig, stream: str | None) -> tuple[str, list[Any]]:
    sql, params = "", list[Any]()
    if config.schemas:
        sql += " AND c.table_schema IN (" + ", ".join(["%s"] * len(config.schemas)) + ")"
        params.extend(config.schemas)
    if stream is not None:
        sql += " AND c.table_schema || '.' || c.table_name = %s"
        params.append(stream)
    return sql, params


class RedshiftConfig(SqlConfig):
    port: int = Field(default=5439, ge=1, le=65535, description="TCP port of the cluster or workgroup.")
    tls_mode: TlsMode = Field(default="require", description="As for PostgreSQL; Redshift clusters expect TLS.")


def _unhex(value: Any) -> Any:
    return bytes.fromhex(value) if isinstance(value, str) else value


class RedshiftSource(SqlSource):
    type_name: ClassVar[str] = "redshift"
    title: ClassVar[str] = "Amazon Redshift"
    config_model: ClassVar[type[ConnectorConfig]] = RedshiftConfig
    dialect: ClassVar[Dialect] = PostgresDialect()

    @contextmanager
    def connect(self) -> Iterator[Any]:
        # Redshift rejects libpq's `options` startup parameter: settings go in a SET.
        with libpq_params(self.config, options=None) as params:
            try:
                conn = psycopg.connect(**params, autocommit=True)  # type: ignore[arg-type]
            except psycopg.Error as exc:
                raise translate(exc, self.config, "connecting") from exc
        try:
            conn.execute("SET timezone TO 'UTC'")
            register_infinity_loaders(conn)
            yield conn
        except psycopg.Error as exc:
            raise translate(exc, self.config, "reading") from exc
        finally:
            conn.close()

    def fingerprint_query(self) -> tuple[str, list[Any]]:
        return fingerprint.redshift(self.config.schemas)

    def list_tables(self, conn: Any, stream: str | None = None) -> list[SqlTable]:
        filters, params = catalog_filters(self.config, stream)
        found: dict[tuple[str, str], tuple[bool, list[SqlColumn]]] = {}
        keys: dict[tuple[str, str], list[str]] = {}
        with conn.cursor() as cur:
            cur.execute(COLUMNS_SQL.format(filters=filters), params)
            for schema, name, kind, col, nullable, data_type, precision, scale in cur.fetchall():
                arrow, select, warning = map_type(data_type, precision, scale)
                entry = found.setdefault((schema, name), ("VIEW" in str(kind).upper(), []))
                entry[1].append(SqlColumn(name=col, source_type=declared(data_type, precision, scale),
                                          arrow_type=arrow, nullable=str(nullable).upper() == "YES",
                                          select=select, warning=warning))
            cur.execute(KEYS_SQL)
            for schema, name, col in cur.fetchall():
                keys.setdefault((schema, name), []).append(col)
        tables = [SqlTable(namespace=s, name=n, columns=tuple(cols), primary_key=tuple(keys.get((s, n), ())),
                           is_view=is_view) for (s, n), (is_view, cols) in found.items()]
        return [t for t in tables if not self.config.tables or t.stream in self.config.tables]

    def check_access(self, conn: Any) -> None:
        user = self.config.user
        tables = self.list_tables(conn)
        if self.config.tables:
            absent = sorted(set(self.config.tables) - {t.stream for t in tables})
            if absent:
                raise SourceError(f"tables {absent} do not exist in database {self.config.database!r}",
                                  FailureKind.CONFIG, field="tables")
        denied: list[str] = []
        for table in tables[:MAX_PROBED_TABLES]:
            try:
                conn.execute(f"SELECT * FROM {self.dialect.table_sql(table)} LIMIT 0", [])  # noqa: S608
            except psycopg.errors.InsufficientPrivilege:
                denied.append(table.stream)
        if denied and (self.config.tables or len(denied) == len(tables)):
            shown = ", ".join(denied[:5]) + (" ..." if len(denied) > 5 else "")
            raise SourceError(f"user {user!r} lacks SELECT on {shown}: GRANT SELECT ON ... TO {user}",
                              FailureKind.CONFIG, field="user")
        if denied:
            log.warning("some tables are not readable", extra=fields(user=user, tables=denied[:20]))

    def execute(self, plan: ReadPlan) -> Iterator[pa.RecordBatch]:
        sql, params = self.dialect.render(plan)
        converters = [_unhex if c.select == "TO_HEX({})" else default_converter(c.arrow_type)
                      for c in plan.columns]
        rows: list[Any] = []
        done = 0
        with self.connect() as conn, conn.cursor() as cur:
            for row in cur.stream(sql, params, size=min(self.config.batch_size, 10_000)):
                rows.append(row)
                if len(rows) >= self.config.batch_size:
                    yield rows_to_batch(rows, plan.schema, converters, plan.table.stream, first_row=done)
                    done += len(rows)
                    rows = []
        if rows:
            yield rows_to_batch(rows, plan.schema, converters, plan.table.stream, first_row=done)

    def partitions(self, stream: StreamSpec, count: int) -> list[KeyRange]:
        """Equal-width ranges of an integer first key, for tables big enough to be worth it."""
        key = self.key_column(stream)
        table = self.table(stream.name)
        if key is None or count < 2 or table.is_view or not pa.types.is_integer(key.arrow_type):
            return []
        quoted = self.dialect.quote(key.name)
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(ROWS_SQL, [table.namespace, table.name])
            row = cur.fetchone()
            if row is None or (row[0] or 0) < MIN_SPLIT_ROWS:
                return []
            cur.execute(f"SELECT MIN({quoted}), MAX({quoted}) FROM {self.dialect.table_sql(table)}", [])  # noqa: S608
            low, high = cur.fetchone()
        if low is None:
            return []
        return integer_ranges(key.name, int(low), int(high), count)
