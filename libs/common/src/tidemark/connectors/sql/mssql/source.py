"""The SQL Server source: pymssql (FreeTDS, bundled in the wheel), rows streamed from TDS.

No SQL Server runs on the development machines: the generated SQL and the type mapping
are unit-tested, and ``tests/integration/test_source_mssql.py`` runs the shared suite
against a real server whenever ``TIDEMARK_TEST_MSSQL_URL`` is set.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time
from typing import Any, ClassVar

import pyarrow as pa
import pymssql
from pydantic import Field

from tidemark.connectors.base import ConnectorConfig
from tidemark.connectors.boundary import scrub, secret_values
from tidemark.connectors.sql import fingerprint
from tidemark.connectors.sql.arrow import default_converter, rows_to_batch
from tidemark.connectors.sql.config import SqlConfig
from tidemark.connectors.sql.errors import ErrorRule, classify
from tidemark.connectors.sql.mssql.types import MssqlType, cast_target, map_type
from tidemark.connectors.sql.plan import Dialect, ReadPlan, quote_with
from tidemark.connectors.sql.source import SqlSource
from tidemark.connectors.sql.tables import SqlColumn, SqlTable
from tidemark.errors import FailureKind, SourceError

CONFIG, TRANSIENT = FailureKind.CONFIG, FailureKind.TRANSIENT

# FreeTDS cannot verify a server certificate through pymssql's arguments, so only these.
ENCRYPTION = {"disable": "off", "prefer": "request", "require": "require"}


class MssqlConfig(SqlConfig):
    port: int = Field(default=1433, ge=1, le=65535, description="TCP port of the database server.")


def _params(names: Sequence[str], prefix: str) -> tuple[str, dict[str, Any]]:
    keys = [f"{prefix}{i}" for i in range(len(names))]
    return ", ".join(f"%({k})s" for k in keys), dict(zip(keys, names, strict=True))


_TYPE_NAME = ("CASE WHEN t.is_user_defined = 1 AND t.is_assembly_type = 0 "
              "THEN TYPE_NAME(c.system_type_id) ELSE t.name END")


def catalog_queries(schemas: Sequence[str], stream: str | None) -> tuple[str, str, dict[str, Any]]:
    """The columns and primary-key queries for ``schemas`` (all when empty) and one ``stream``."""
    filters, params = "", dict[str, Any]()
    if schemas:
        placeholders, params = _params(schemas, "s")
        filters += f" AND s.name IN ({placeholders})"
    if stream is not None:
        filters += " AND s.name + '.' + o.name = %(stream)s"
        params["stream"] = stream
    columns = f"""
SELECT s.name, o.name, o.type, c.name, c.is_nullable, {_TYPE_NAME}, c.max_length, c.precision, c.scale,
       HAS_PERMS_BY_NAME(QUOTENAME(s.name) + '.' + QUOTENAME(o.name), 'OBJECT', 'SELECT')
FROM sys.objects o
JOIN sys.schemas s ON s.schema_id = o.schema_id
JOIN sys.columns c ON c.object_id = o.object_id
JOIN sys.types t ON t.user_type_id = c.user_type_id
WHERE o.type IN ('U', 'V') AND o.is_ms_shipped = 0 AND s.name NOT IN ('sys', 'INFORMATION_SCHEMA'){filters}
ORDER BY s.name, o.name, c.column_id"""  # noqa: S608 - only placeholders are interpolated
    keys = f"""
SELECT s.name, o.name, c.name
FROM sys.indexes i
JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
JOIN sys.objects o ON o.object_id = i.object_id
JOIN sys.schemas s ON s.schema_id = o.schema_id
WHERE i.is_primary_key = 1{filters}
ORDER BY s.name, o.name, ic.key_ordinal"""  # noqa: S608 - only placeholders are interpolated
    return columns, keys, params


RULES = (
    ErrorRule(("(4060,", "cannot open database"), CONFIG,
              "database {database!r} does not exist on {host}:{port}, or user {user!r} may not open it", "database"),
    ErrorRule(("(18456,", "login failed"), CONFIG,
              "authentication failed for user {user!r}: check the user name and password", "password"),
    ErrorRule(("(229,", "(230,", "permission was denied"), CONFIG,
              "user {user!r} lacks a privilege: {detail}; GRANT SELECT ON <table> TO ...", "user"),
    ErrorRule(("connection refused",), TRANSIENT,
              "nothing accepts connections at {host}:{port}: is the server running, and is the port right?"),
    ErrorRule(("timed out", "timeout"), TRANSIENT,
              "{host}:{port} did not answer within {timeout} s: is the host reachable from here?"),
    ErrorRule(("ssl", "tls", "encrypt"), CONFIG,
              "TLS to {host}:{port} failed with tls_mode {tls_mode!r}: {detail}", "tls_mode"),
    ErrorRule(("(208,", "(207,"), CONFIG, "{detail}"),
    ErrorRule(("(1205,", "(40613,", "(40501,", "(10928,", "(10929,", "unexpected eof",
               "server is unavailable", "connection failed"), TRANSIENT,
              "the server at {host}:{port} is unavailable right now: {detail}"),
)


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        return False
    return True


def translate(exc: BaseException, config: SqlConfig, action: str) -> SourceError:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    raw = args[1] if len(args) > 1 else str(exc)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    code = args[0] if args else ""
    detail = scrub(" ".join(f"({code}, {text})".split()), secret_values(config), limit=None)
    if "does not exist (" in detail and "net-lib" not in detail.lower() and not _resolves(config.host):
        # FreeTDS says the same for a typo'd host and a dead server; DNS tells them apart.
        return SourceError(f"host {config.host!r} could not be resolved: check the host name", CONFIG, field="host")
    fmt = {"user": config.user, "database": config.database, "host": config.host, "port": config.port,
           "tls_mode": config.tls_mode, "timeout": config.connect_timeout_seconds, "detail": detail}
    found = classify(detail, RULES, fmt)
    if found is None:
        return SourceError(f"{action} failed: {detail}", FailureKind.TERMINAL)
    message, kind, field = found
    return SourceError(message, kind, **({"field": field} if field else {}))


def to_text(value: Any) -> str:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


# Where a value goes until render() writes it in: NUL delimits it, and no quoted identifier holds NUL.
_MARK = "\x00p{}\x00"


def literal(value: str) -> str:
    """A T-SQL Unicode string literal (quotes doubled: T-SQL has no other escape in string literals)."""
    return "N'" + value.replace("'", "''") + "'"


class MssqlDialect(Dialect):
    """Square-bracket identifiers; values as Unicode literals cast server-side from text (pymssql would
    otherwise cut datetimes to milliseconds).

    pymssql substitutes parameters on the client, in the SQL text, and has no escape for ``%``: an
    identifier holding ``%(p0)s`` would have the value pasted into it. So values are written in as
    literals here, as pymssql itself would quote them, and the statement goes without parameters."""

    def quote(self, identifier: str) -> str:
        return quote_with(identifier, "[", "]")

    def placeholder(self, column: SqlColumn, index: int) -> str:
        return f"CAST({_MARK.format(index)} AS {cast_target(column.source_type, column.arrow_type)})"

    def bind(self, value: Any, column: SqlColumn) -> Any:
        return to_text(value)

    def render(self, plan: ReadPlan) -> tuple[str, list[Any]]:
        sql, params = super().render(plan)
        for index, value in enumerate(params):
            sql = sql.replace(_MARK.format(index), literal(value))
        return sql, []

    def limit(self, sql: str, rows: int) -> str:
        return sql.replace("SELECT ", f"SELECT TOP {int(rows)} ", 1)


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


class MssqlSource(SqlSource):
    type_name: ClassVar[str] = "mssql"
    title: ClassVar[str] = "SQL Server"
    config_model: ClassVar[type[ConnectorConfig]] = MssqlConfig
    dialect: ClassVar[Dialect] = MssqlDialect()

    def connect_args(self) -> dict[str, Any]:
        c = self.config
        if c.tls_mode not in ENCRYPTION:
            raise SourceError(f"tls_mode {c.tls_mode!r} is not available for SQL Server: use disable, prefer or "
                              "require (pymssql cannot verify the server certificate)", CONFIG, field="tls_mode")
        return {"server": c.host, "port": str(c.port), "user": c.user, "password": c.password.get_secret_value(),
                "database": c.database, "login_timeout": c.connect_timeout_seconds, "appname": "tidemark",
                "encryption": ENCRYPTION[c.tls_mode], "tds_version": "7.4", "charset": "UTF-8",
                "conn_properties": ["SET TRANSACTION ISOLATION LEVEL READ COMMITTED", "SET ARITHABORT ON"]}

    @contextmanager
    def connect(self) -> Iterator[Any]:
        try:
            conn = pymssql.connect(**self.connect_args())
        except pymssql.Error as exc:
            raise translate(exc, self.config, "connecting") from exc
        try:
            yield conn
        except pymssql.Error as exc:
            raise translate(exc, self.config, "reading") from exc
        finally:
            conn.close()

    def _relations(self, conn: Any, stream: str | None) -> list[tuple[SqlTable, bool]]:
        columns_sql, keys_sql, params = catalog_queries(self.config.schemas, stream)
        found: dict[tuple[str, str], tuple[bool, bool, list[SqlColumn]]] = {}
        keys: dict[tuple[str, str], list[str]] = {}
        cur = conn.cursor()
        cur.execute(columns_sql, params)
        for schema, name, kind, col, nullable, type_name, max_length, precision, scale, readable in cur.fetchall():
            t = MssqlType(str(type_name), _int(max_length), _int(precision), _int(scale))
            arrow, select, warning = map_type(t)
            entry = found.setdefault((schema, name), (str(kind).strip() == "V", bool(readable), []))
            entry[2].append(SqlColumn(name=col, source_type=t.declared(), arrow_type=arrow, nullable=bool(nullable),
                                      select=select, warning=warning))
        cur.execute(keys_sql, params)
        for schema, name, col in cur.fetchall():
            keys.setdefault((schema, name), []).append(col)
        tables = [(SqlTable(namespace=s, name=n, columns=tuple(cols), primary_key=tuple(keys.get((s, n), ())),
                            is_view=is_view), readable) for (s, n), (is_view, readable, cols) in found.items()]
        return [(t, r) for t, r in tables if not self.config.tables or t.stream in self.config.tables]

    def fingerprint_query(self) -> tuple[str, list[Any]]:
        return fingerprint.mssql(self.config.schemas)

    def list_tables(self, conn: Any, stream: str | None = None) -> list[SqlTable]:
        return [t for t, readable in self._relations(conn, stream) if readable]

    def check_access(self, conn: Any) -> None:
        user = self.config.user
        relations = self._relations(conn, None)
        if self.config.tables:
            absent = sorted(set(self.config.tables) - {t.stream for t, _ in relations})
            if absent:
                raise SourceError(f"tables {absent} do not exist in database {self.config.database!r}",
                                  CONFIG, field="tables")
        if self.config.schemas and not relations:
            raise SourceError(f"schemas {self.config.schemas} hold no table user {user!r} can see",
                              CONFIG, field="schemas")
        unreadable = sorted(t.stream for t, readable in relations if not readable)
        if unreadable and (self.config.tables or len(unreadable) == len(relations)):
            shown = ", ".join(unreadable[:5]) + (" ..." if len(unreadable) > 5 else "")
            raise SourceError(f"user {user!r} lacks SELECT on {shown}: GRANT SELECT ON ... TO {user}",
                              CONFIG, field="user")

    def execute(self, plan: ReadPlan) -> Iterator[pa.RecordBatch]:
        assert isinstance(self.dialect, MssqlDialect)
        sql, params = self.dialect.render(plan)
        converters = [default_converter(c.arrow_type) for c in plan.columns]
        with self.connect() as conn:
            cur = conn.cursor()
            # No parameters: pymssql leaves the text alone, `%` in identifiers included (see MssqlDialect).
            cur.execute(sql, tuple(params) or None)
            done = 0
            while rows := cur.fetchmany(self.config.batch_size):
                yield rows_to_batch(rows, plan.schema, converters, plan.table.stream, first_row=done)
                done += len(rows)
