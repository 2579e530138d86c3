"""The MySQL / MariaDB source: rows read by connectorx straight into Arrow (columnar.py), or by PyMySQL
with an unbuffered (streaming) cursor and Arrow casts in bulk (read.py) where connectorx cannot."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

import connectorx
import pyarrow as pa
import pymysql  # type: ignore[import-untyped]
import pymysql.cursors  # type: ignore[import-untyped]

from tidemark.connectors.base import ConnectorConfig, KeyRange
from tidemark.connectors.boundary import scrub, secret_values
from tidemark.connectors.sql import fingerprint
from tidemark.connectors.sql.config import SqlConfig
from tidemark.connectors.sql.errors import ErrorRule, classify
from tidemark.connectors.sql.mysql import columnar
from tidemark.connectors.sql.mysql.config import MySQLConfig, connect_args
from tidemark.connectors.sql.mysql.read import RAW_CONVERSIONS, stream_rows
from tidemark.connectors.sql.mysql.types import map_type
from tidemark.connectors.sql.plan import Dialect, ReadPlan, integer_ranges, quote_with
from tidemark.connectors.sql.source import SqlSource
from tidemark.connectors.sql.tables import SqlColumn, SqlTable
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec
from tidemark.logs import fields

log = logging.getLogger("tidemark.connectors")

CONFIG, TRANSIENT = FailureKind.CONFIG, FailureKind.TRANSIENT

NO_TLS = 2026  # "SSL is required but the server doesn't support it"
# Probing every table for SELECT is cheap but not free; beyond this many, check() samples.
MAX_PROBED_TABLES = 200


def _in(values: Sequence[str]) -> str:
    return ", ".join(["%s"] * len(values))


def columns_sql(databases: Sequence[str], stream: bool) -> str:
    return f"""
SELECT c.TABLE_SCHEMA, c.TABLE_NAME, t.TABLE_TYPE, c.COLUMN_NAME, c.IS_NULLABLE, c.DATA_TYPE, c.COLUMN_TYPE,
       c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.COLUMN_DEFAULT
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA IN ({_in(databases)}) {"AND CONCAT(c.TABLE_SCHEMA, '.', c.TABLE_NAME) = %s" if stream else ""}
ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION
"""  # noqa: S608 - only placeholders are interpolated


def keys_sql(databases: Sequence[str]) -> str:
    return f"""
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
WHERE CONSTRAINT_NAME = 'PRIMARY' AND TABLE_SCHEMA IN ({_in(databases)})
ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION
"""  # noqa: S608 - only placeholders are interpolated


RULES = (
    ErrorRule(("(1045,",), CONFIG,
              "authentication failed for user {user!r}: check the user name and password", "password"),
    ErrorRule(("(1044,",), CONFIG,
              "user {user!r} has no privileges on database {database!r}: GRANT SELECT ON {database}.* TO ...", "user"),
    ErrorRule(("(1142,", "(1143,"), CONFIG,
              "user {user!r} lacks a privilege: {detail}; GRANT SELECT ON <table> TO ...", "user"),
    ErrorRule(("(1049,",), CONFIG, "database {database!r} does not exist on {host}:{port}", "database"),
    ErrorRule(("name or service not known", "nodename nor servname", "getaddrinfo failed",
               "temporary failure in name resolution"), CONFIG,
              "host {host!r} could not be resolved: check the host name", "host"),
    ErrorRule(("ssl", "tls", "certificate"), CONFIG,
              "TLS to {host}:{port} failed with tls_mode {tls_mode!r}: {detail}", "tls_mode"),
    ErrorRule(("connection refused",), TRANSIENT,
              "nothing accepts connections at {host}:{port}: is the server running, and is the port right?"),
    ErrorRule(("timed out", "no route to host", "network is unreachable"), TRANSIENT,
              "{host}:{port} did not answer within {timeout} s: is the host reachable from here?"),
    ErrorRule(("(2003,", "(2006,", "(2013,", "(1040,", "(1205,", "(1213,"), TRANSIENT,
              "the server at {host}:{port} is unavailable right now: {detail}"),
    ErrorRule(("(1146,", "(1054,"), CONFIG, "{detail}"),
)


CX_ERROR = re.compile(r"MySqlError \{ ERROR (\d+) \([0-9A-Z]{5}\): (.*) \}")


def translate(exc: BaseException, config: SqlConfig, action: str) -> SourceError:
    detail = scrub(" ".join(str(exc).split()), secret_values(config), limit=None)
    # connectorx spells a server error `MySqlError { ERROR 1142 (42000): text }`, PyMySQL `(1142, 'text')`.
    detail = CX_ERROR.sub(r"(\1, \2)", detail)
    fmt = {"user": config.user, "database": config.database, "host": config.host, "port": config.port,
           "tls_mode": config.tls_mode, "timeout": config.connect_timeout_seconds, "detail": detail}
    found = classify(detail, RULES, fmt)
    if found is None:
        return SourceError(f"{action} failed: {detail}", FailureKind.TERMINAL)
    message, kind, field = found
    return SourceError(message, kind, **({"field": field} if field else {}))


class MySQLDialect(Dialect):
    def quote(self, identifier: str) -> str:
        # PyMySQL formats with `%`, and every query is sent with (possibly empty) args.
        return quote_with(identifier, "`", "`").replace("%", "%%")

    def bind(self, value: Any, column: SqlColumn) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)  # the session's time zone is UTC
        return value


class MySQLSource(SqlSource):
    type_name: ClassVar[str] = "mysql"
    title: ClassVar[str] = "MySQL / MariaDB"
    config_model: ClassVar[type[ConnectorConfig]] = MySQLConfig
    dialect: ClassVar[Dialect] = MySQLDialect()
    # Whether connections go without TLS (learnt on the first connection): only then may connectorx read.
    _plain_tcp: bool | None = None

    def _databases(self) -> list[str]:
        assert isinstance(self.config, MySQLConfig)
        return self.config.databases()

    @contextmanager
    def _connection(self, cursorclass: Any) -> Iterator[Any]:
        args = connect_args(self.config)
        try:
            try:
                conn = pymysql.connect(**args, conv=RAW_CONVERSIONS, cursorclass=cursorclass)
                self._plain_tcp = args["ssl"] is None
            except pymysql.err.OperationalError as exc:
                # PyMySQL refuses a server without TLS once TLS is asked for; `prefer` then goes plain.
                if self.config.tls_mode != "prefer" or not exc.args or exc.args[0] != NO_TLS:
                    raise
                conn = pymysql.connect(**(args | {"ssl": None}), conv=RAW_CONVERSIONS, cursorclass=cursorclass)
                self._plain_tcp = True
        except pymysql.MySQLError as exc:
            raise translate(exc, self.config, "connecting") from exc
        try:
            yield conn
        except pymysql.MySQLError as exc:
            raise translate(exc, self.config, "reading") from exc
        finally:
            conn.close()

    def connect(self) -> Any:
        return self._connection(pymysql.cursors.Cursor)

    def fingerprint_query(self) -> tuple[str, list[Any]]:
        return fingerprint.mysql(self._databases(), self.config.tables)

    def list_tables(self, conn: Any, stream: str | None = None) -> list[SqlTable]:
        databases = self._databases()
        params: list[Any] = list(databases) + ([stream] if stream is not None else [])
        tables: dict[tuple[str, str], tuple[bool, list[SqlColumn]]] = {}
        keys: dict[tuple[str, str], list[str]] = {}
        with conn.cursor() as cur:
            cur.execute(columns_sql(databases, stream is not None), params)
            for db, name, kind, col, nullable, data_type, column_type, precision, scale, default in cur.fetchall():
                arrow, select, warning = map_type(data_type, column_type, _int(precision), _int(scale))
                entry = tables.setdefault((db, name), ("VIEW" in str(kind).upper(), []))
                entry[1].append(SqlColumn(name=col, source_type=column_type, arrow_type=arrow,
                                          nullable=nullable == "YES", select=select, warning=warning,
                                          default=_text(default)))
            cur.execute(keys_sql(databases), databases)
            for db, name, col in cur.fetchall():
                keys.setdefault((db, name), []).append(col)
        found = [SqlTable(namespace=db, name=name, columns=tuple(cols), primary_key=tuple(keys.get((db, name), ())),
                          is_view=is_view) for (db, name), (is_view, cols) in tables.items()]
        return [t for t in found if not self.config.tables or t.stream in self.config.tables]

    def check_access(self, conn: Any) -> None:
        user = self.config.user
        with conn.cursor() as cur:
            cur.execute(f"SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "  # noqa: S608
                        f"WHERE SCHEMA_NAME IN ({_in(self._databases())})", self._databases())
            visible = {row[0] for row in cur.fetchall()}
        missing = [d for d in self._databases() if d not in visible]
        if missing:
            raise SourceError(f"databases {missing} do not exist, or user {user!r} has no privilege on them",
                              CONFIG, field="schemas")
        tables = self.list_tables(conn)
        if self.config.tables:
            absent = sorted(set(self.config.tables) - {t.stream for t in tables})
            if absent:
                raise SourceError(f"tables {absent} do not exist, or user {user!r} has no privilege on them",
                                  CONFIG, field="tables")
        denied: list[str] = []
        with conn.cursor() as cur:
            for table in tables[:MAX_PROBED_TABLES]:
                try:
                    cur.execute(f"SELECT 1 FROM {self.dialect.table_sql(table)} WHERE 1 = 0", [])  # noqa: S608
                    cur.fetchall()
                except pymysql.err.OperationalError as exc:
                    if exc.args and exc.args[0] in (1142, 1143):
                        denied.append(table.stream)
                        continue
                    raise
        if denied and (self.config.tables or len(denied) == len(tables)):
            shown = ", ".join(denied[:5]) + (" ..." if len(denied) > 5 else "")
            raise SourceError(f"user {user!r} lacks SELECT on {shown}: GRANT SELECT ON ... TO {user}",
                              CONFIG, field="user")
        if denied:
            log.warning("some tables are not readable", extra=fields(user=user, tables=denied[:20]))

    def execute(self, plan: ReadPlan) -> Iterator[pa.RecordBatch]:
        sql = self._columnar_sql(plan)
        if sql is not None:
            yield from self._execute_columnar(plan, sql)
            return
        rendered, params = self.dialect.render(plan)
        count_sql, _ = self.dialect.render_count(plan)
        with self._connection(pymysql.cursors.SSCursor) as conn, conn.cursor() as cur:
            # The count and the rows come from one consistent snapshot (InnoDB's REPEATABLE READ); the
            # count after the rows, so the first rows do not wait for a scan.
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            cur.execute(rendered, params)
            yield from stream_rows(cur, plan, self.config.batch_size, self.warnings)
            cur.execute(count_sql, params)
            found = cur.fetchall()
            self.snapshot_counts[plan.table.stream] = int(found[0][0]) if found else 0

    def _columnar_sql(self, plan: ReadPlan) -> str | None:
        """The SQL connectorx runs for ``plan``, or None when PyMySQL reads it: columnar reads are off,
        the connection uses TLS (connectorx's TLS options do not match ``tls_mode``'s), or a bound value
        cannot be a literal."""
        assert isinstance(self.config, MySQLConfig)
        if not self.config.columnar:
            return None
        if self._plain_tcp is None:
            # One catalog connection tells whether `prefer` found TLS, and fails fast on a bad password
            # (connectorx's pool would retry for half a minute).
            with self.connect():
                pass
        return columnar.render(self.dialect, plan) if self._plain_tcp else None

    def _execute_columnar(self, plan: ReadPlan, sql: str) -> Iterator[pa.RecordBatch]:
        stream = plan.table.stream
        queries, count = list(columnar.PRE_QUERIES), None
        with_count = columnar.counted(self.dialect, plan, sql)
        if with_count is not None:
            sql, before = with_count
            queries += before

            def count(rows: int) -> None:
                self.snapshot_counts[stream] = rows
        try:
            reader = connectorx.read_sql(columnar.url(self.config), sql, return_type="arrow_stream",
                                         batch_size=self.config.batch_size, pre_execution_query=queries)
            yield from columnar.stream_batches(reader, plan, self.warnings, count)
        except SourceError:
            raise
        except BaseException as exc:
            # connectorx raises RuntimeError, and pyo3's PanicException (a BaseException) on a value it
            # cannot convert; both become a SourceError with the URL's secrets scrubbed.
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise
            raise translate(exc, self.config, "reading") from exc

    def partitions(self, stream: StreamSpec, count: int) -> list[KeyRange]:
        """Equal-width ranges of an integer first key column, from its MIN and MAX."""
        key = self.key_column(stream)
        table = self.table(stream.name)
        if key is None or count < 2 or table.is_view or not pa.types.is_integer(key.arrow_type):
            return []
        quoted = self.dialect.quote(key.name)
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT MIN({quoted}), MAX({quoted}) FROM {self.dialect.table_sql(table)}", [])  # noqa: S608
            low, high = cur.fetchone()
        if low is None:
            return []
        return integer_ranges(key.name, int(low), int(high), count)


def _text(value: Any) -> str | None:
    """A catalog value as text (the source's connections hand back raw bytes)."""
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else str(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
