"""The PostgreSQL source: psycopg for the catalog, ADBC (binary COPY) for the rows."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from typing import Any, ClassVar

import adbc_driver_postgresql.dbapi as adbc  # type: ignore[import-untyped]
import psycopg
import pyarrow as pa

from tidemark.connectors.base import ConnectorConfig, KeyRange
from tidemark.connectors.sql import fingerprint
from tidemark.connectors.sql.plan import Dialect, ReadPlan, quote_with
from tidemark.connectors.sql.postgres.catalog import Scope, fetch_relations, in_scope, schema_access
from tidemark.connectors.sql.postgres.config import PostgresConfig, libpq_params, libpq_uri
from tidemark.connectors.sql.postgres.errors import translate
from tidemark.connectors.sql.postgres.read import (
    SETTING,
    AdbcConnections,
    adbc_batches,
    psycopg_batches,
    register_infinity_loaders,
)
from tidemark.connectors.sql.source import SqlSource
from tidemark.connectors.sql.tables import SqlColumn, SqlTable
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec
from tidemark.logs import fields

log = logging.getLogger("tidemark.connectors")

# Partition boundaries come from a sample of about this many keys: enough for even ranges.
SAMPLE_ROWS = 200_000


def to_text(value: Any) -> str:
    """A typed value as text the server casts back exactly (``CAST($n AS type)``)."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


class PostgresDialect(Dialect):
    """psycopg flavour: ``%s`` placeholders, so a literal ``%`` in SQL text is doubled."""

    percent = True

    def quote(self, identifier: str) -> str:
        quoted = quote_with(identifier, '"', '"')
        return quoted.replace("%", "%%") if self.percent else quoted

    def _type(self, column: SqlColumn) -> str:
        return column.source_type.replace("%", "%%") if self.percent else column.source_type

    def placeholder(self, column: SqlColumn, index: int) -> str:
        return f"CAST(%s AS {self._type(column)})"

    def bind(self, value: Any, column: SqlColumn) -> Any:
        return to_text(value)


class AdbcDialect(PostgresDialect):
    """ADBC flavour: values come from session settings bound beforehand (see ``read``)."""

    percent = False

    def placeholder(self, column: SqlColumn, index: int) -> str:
        return f"CAST(current_setting('{SETTING.format(index)}') AS {self._type(column)})"

    def select_expr(self, column: SqlColumn) -> str:
        # ADBC turns binary numerics into text itself, slowly, on the reading core; the server's own
        # numeric_out is cheaper, and it runs on the server's core. The text casts to the decimal exactly.
        if pa.types.is_decimal(column.arrow_type) and column.select == "{}":
            quoted = self.quote(column.name)
            return f"{quoted}::text AS {quoted}"
        return super().select_expr(column)


ADBC_DIALECT = AdbcDialect()


class PostgresSource(SqlSource):
    type_name: ClassVar[str] = "postgres"
    title: ClassVar[str] = "PostgreSQL"
    config_model: ClassVar[type[ConnectorConfig]] = PostgresConfig
    dialect: ClassVar[Dialect] = PostgresDialect()

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        self._adbc = AdbcConnections()

    def close(self) -> None:
        self._adbc.close()

    @contextmanager
    def connect(self) -> Iterator[Any]:
        with libpq_params(self.config) as params:
            try:
                conn = psycopg.connect(**params, autocommit=True)  # type: ignore[arg-type]
            except psycopg.Error as exc:
                raise translate(exc, self.config, "connecting") from exc
        try:
            register_infinity_loaders(conn)
            yield conn
        except psycopg.Error as exc:
            raise translate(exc, self.config, "reading") from exc
        finally:
            conn.close()

    def fingerprint_query(self) -> tuple[str, list[Any]]:
        return fingerprint.postgres(self.config.schemas, self.config.tables)

    def _relations(self, conn: Any, stream: str | None) -> list[tuple[SqlTable, bool]]:
        return [(t, readable) for t, readable in fetch_relations(conn, Scope(self.config.schemas, stream))
                if in_scope(self.config, t.stream)]

    def list_tables(self, conn: Any, stream: str | None = None) -> list[SqlTable]:
        return [t for t, readable in self._relations(conn, stream) if readable]

    def check_access(self, conn: Any) -> None:
        user = self.config.user
        if self.config.schemas:
            access = schema_access(conn, self.config.schemas)
            missing = [s for s in self.config.schemas if s not in access]
            if missing:
                raise SourceError(f"schemas {missing} do not exist in database {self.config.database!r}",
                                  FailureKind.CONFIG, field="schemas")
            denied = [s for s, usage in access.items() if not usage]
            if denied:
                raise SourceError(f"user {user!r} lacks USAGE on schemas {denied}: GRANT USAGE ON SCHEMA ... "
                                  f"TO {user}", FailureKind.CONFIG, field="schemas")
        relations = self._relations(conn, None)
        unreadable = sorted(t.stream for t, readable in relations if not readable)
        if self.config.tables:
            found = {t.stream for t, _ in relations}
            absent = [s for s in self.config.tables if s not in found]
            if absent:
                raise SourceError(f"tables {absent} do not exist in database {self.config.database!r}",
                                  FailureKind.CONFIG, field="tables")
        if unreadable and (self.config.tables or len(unreadable) == len(relations)):
            shown = ", ".join(unreadable[:5]) + (" ..." if len(unreadable) > 5 else "")
            raise SourceError(f"user {user!r} lacks SELECT on {shown}: GRANT SELECT ON ... TO {user}",
                              FailureKind.CONFIG, field="user")
        if unreadable:
            log.warning("some tables are not readable and are left out",
                        extra=fields(user=user, tables=unreadable[:20]))

    def execute(self, plan: ReadPlan) -> Iterator[pa.RecordBatch]:
        assert isinstance(self.config, PostgresConfig)
        stream = plan.table.stream

        def counted(rows: int) -> None:
            self.snapshot_counts[stream] = rows

        if self.config.engine == "psycopg":
            sql, params = self.dialect.render(plan)
            count_sql, _ = self.dialect.render_count(plan)
            with self.connect() as conn:
                yield from psycopg_batches(conn, sql, params, plan, self.config.batch_size, self.warnings,
                                           count_sql, counted)
            return
        sql, params = ADBC_DIALECT.render(plan)
        count_sql, _ = ADBC_DIALECT.render_count(plan)
        with libpq_params(self.config) as libpq:
            try:
                yield from adbc_batches(self._adbc, libpq_uri(libpq), sql, params, plan, self.config.batch_size,
                                        self.warnings, count_sql, counted)
            except adbc.Error as exc:
                raise translate(exc, self.config, f"reading {plan.table.stream}") from exc

    def partitions(self, stream: StreamSpec, count: int) -> list[KeyRange]:
        """Key ranges of about equal size, from quantiles of a sample of the first key column."""
        key = self.key_column(stream)
        table = self.table(stream.name)
        if key is None or count < 2 or table.is_view:
            return []
        fractions = [i / count for i in range(1, count)]
        target = self.dialect.table_sql(table)
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT greatest(reltuples, 0)::float8 FROM pg_catalog.pg_class WHERE oid = to_regclass(%s)",
                        [target.replace("%%", "%")])
            row = cur.fetchone()
            estimate = float(row[0]) if row else 0.0
            sample = ""
            if estimate > SAMPLE_ROWS:
                sample = f" TABLESAMPLE SYSTEM ({min(100.0, 100.0 * SAMPLE_ROWS / estimate):.6f})"
            quoted = self.dialect.quote(key.name)
            # Identifiers are quoted; the fractions are a bound parameter.
            cur.execute(f"SELECT percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY {quoted})::text[] "  # noqa: S608
                        f"FROM {target}{sample}", [fractions])
            found = cur.fetchone()
        # Quantiles come back in key order; duplicates (a skewed key) would make empty ranges.
        bounds = list(dict.fromkeys(b for b in (found[0] if found and found[0] else []) if b is not None))
        if not bounds:
            return []
        edges: list[str | None] = [None, *bounds, None]
        return [KeyRange(column=key.name, lower=lo, upper=hi) for lo, hi in itertools.pairwise(edges)]

