"""SQLite source: the bundled sample database, and any SQLite file a user points at."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field

from tidemark.connectors.base import Catalog, ColumnInfo, ConnectorConfig, Source, StreamInfo, StreamState
from tidemark.connectors.sql.cursor import cursor_bound
from tidemark.connectors.sql.fingerprint import digest
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode

SAMPLE_PREFIX = "sample:"
# Sample databases are demo data of the embedded platform, shipped by tidemark-cli, which
# registers each under this entry-point group: the runtime library stays free of them.
SAMPLES_GROUP = "tidemark.samples"


def sample_database(name: str) -> Path:
    """The file of the installed sample database ``name``."""
    found = {ep.name: ep for ep in entry_points(group=SAMPLES_GROUP)}
    if name not in found:
        known = ", ".join(f"{SAMPLE_PREFIX}{n}" for n in sorted(found)) or "none (they come with tidemark-cli)"
        raise SourceError(f"path: no sample database {name!r} is installed; installed: {known}",
                          FailureKind.CONFIG, field="path")
    return Path(found[name].load())


class SQLiteConfig(ConnectorConfig):
    path: str = Field(description="Path of the SQLite file; `sample:shop` is the bundled demo database.")
    batch_size: int = Field(default=50_000, ge=1, le=1_000_000, description="Rows per Arrow batch.")

    def resolved_path(self) -> Path:
        if self.path.startswith(SAMPLE_PREFIX):
            return sample_database(self.path.removeprefix(SAMPLE_PREFIX))
        return Path(self.path)


_DECIMAL = re.compile(r"^(?:NUMERIC|DECIMAL)\s*\(\s*(\d+)\s*(?:,\s*(\d+))?\s*\)$", re.I)


def arrow_type(declared: str) -> pa.DataType:
    """SQLite declared type → Arrow type, by SQLite's own affinity rules plus common names."""
    t = declared.strip().upper()
    if m := _DECIMAL.match(t):
        return pa.decimal128(int(m.group(1)), int(m.group(2) or 0))
    if t in {"BOOLEAN", "BOOL"}:
        return pa.bool_()
    if t == "DATE":
        return pa.date32()
    if t in {"DATETIME", "TIMESTAMP"}:
        return pa.timestamp("us", tz="UTC")
    if "INT" in t:
        return pa.int64()
    if any(k in t for k in ("CHAR", "CLOB", "TEXT")):
        return pa.string()
    if any(k in t for k in ("REAL", "FLOA", "DOUB")):
        return pa.float64()
    if t == "BLOB":
        return pa.binary()
    return pa.string()


def _convert(value: Any, typ: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_timestamp(typ) and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if pa.types.is_date32(typ) and isinstance(value, str):
        return date.fromisoformat(value)
    if pa.types.is_decimal(typ):
        return Decimal(str(value))
    if pa.types.is_boolean(typ):
        return bool(value)
    if pa.types.is_string(typ) and not isinstance(value, str):
        return str(value)
    return value


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class SQLiteSource(Source):
    type_name: ClassVar[str] = "sqlite"
    title: ClassVar[str] = "SQLite"
    config_model: ClassVar[type[ConnectorConfig]] = SQLiteConfig

    def _connect(self) -> sqlite3.Connection:
        assert isinstance(self.config, SQLiteConfig)
        path = self.config.resolved_path()
        if not path.is_file():
            raise SourceError(f"path: no SQLite database at {path}", FailureKind.CONFIG, field="path")
        try:
            return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise SourceError(f"cannot open {path}: {exc}", FailureKind.CONFIG, field="path") from exc

    def check(self) -> None:
        with self._connect() as conn:
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as exc:
                raise SourceError(f"not a readable SQLite database: {exc}", FailureKind.CONFIG) from exc

    def discover(self) -> Catalog:
        streams: list[StreamInfo] = []
        with self._connect() as conn:
            tables = conn.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall()
            for (table,) in tables:
                info = conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
                columns = [
                    ColumnInfo(name=c[1], type=str(arrow_type(c[2])), nullable=not c[3] and not c[5],
                               source_type=c[2] or "", default=None if c[4] is None else str(c[4]))
                    for c in info
                ]
                key = [c[1] for c in sorted((c for c in info if c[5]), key=lambda c: c[5])]
                cursors = [c.name for c in columns
                           if c.type.startswith(("int", "timestamp", "date"))]
                streams.append(StreamInfo(name=f"main.{table}", columns=columns, primary_key=key,
                                          cursor_candidates=cursors))
        return Catalog(streams=streams)

    def fingerprint(self) -> str | None:
        # The schema table holds each table's whole CREATE statement: columns, types, keys, defaults.
        with self._connect() as conn:
            row = conn.execute("SELECT count(*), group_concat(entry, char(10)) FROM (SELECT type || '|' || name || "
                               "'|' || coalesce(sql, '') AS entry FROM sqlite_master "
                               "WHERE name NOT LIKE 'sqlite_%' ORDER BY name)").fetchone()
        return digest(row)

    def _table(self, stream: StreamSpec) -> str:
        schema, _, table = stream.name.partition(".")
        if schema != "main" or not table:
            raise SourceError(f"stream {stream.name!r}: SQLite streams are named `main.<table>`",
                              FailureKind.CONFIG)
        return table

    def arrow_schema(self, stream: StreamSpec) -> pa.Schema:
        info = self.discover().stream(stream.name)
        if info is None:
            raise SourceError(f"stream {stream.name!r} does not exist in the source", FailureKind.CONFIG)
        wanted = stream.columns or info.column_names()
        by_name = {c.name: c for c in info.columns}
        missing = [c for c in wanted if c not in by_name]
        if missing:
            raise SourceError(f"stream {stream.name!r}: unknown columns {missing}", FailureKind.CONFIG)
        return pa.schema(
            [pa.field(c, arrow_type(by_name[c].source_type), nullable=by_name[c].nullable) for c in wanted]
        )

    def declared_key(self, stream: StreamSpec) -> list[str]:
        info = self.discover().stream(stream.name)
        return info.primary_key if info is not None else []

    def _cursor_type(self, stream: StreamSpec) -> pa.DataType:
        info = self.discover().stream(stream.name)
        column = next((c for c in info.columns if c.name == stream.cursor_field), None) if info else None
        if column is None:
            raise SourceError(f"stream {stream.name!r}: unknown cursor column {stream.cursor_field!r}",
                              FailureKind.CONFIG)
        return arrow_type(column.source_type)

    def read(self, stream: StreamSpec, state: StreamState | None) -> Iterator[pa.RecordBatch]:
        assert isinstance(self.config, SQLiteConfig)
        schema = self.arrow_schema(stream)
        table = self._table(stream)
        # Identifiers are quoted by _quote; values go through parameters.
        sql = f"SELECT {', '.join(_quote(n) for n in schema.names)} FROM {_quote(table)}"  # noqa: S608
        params: list[Any] = []
        if stream.cursor_field and (bound := cursor_bound(stream, state, self._cursor_type(stream))):
            op, value = bound
            column = _quote(stream.cursor_field)
            if isinstance(value, date):
                # Stored as ISO text in any of several spellings: compare instants, not strings.
                sql += f" WHERE julianday({column}) {op} julianday(?)"
                value = value.isoformat()
            else:
                sql += f" WHERE {column} {op} ?"
                value = str(value) if isinstance(value, Decimal) else value
            params.append(value)
        count_sql = f"SELECT count(*) FROM ({sql})"  # noqa: S608 - built above
        declared = set(self.declared_key(stream))
        if stream.cursor_field and stream.sync_mode is SyncMode.INCREMENTAL and (
                not declared or not declared <= set(stream.primary_key)):
            # As in tidemark.connectors.sql.source.needs_order: only a merge whose key may repeat needs order.
            sql += f" ORDER BY {_quote(stream.cursor_field)}"
        with self._connect() as conn:
            # One read transaction: the count and the rows see the same state of the file.
            conn.execute("BEGIN")
            self.snapshot_counts[stream.name] = int(conn.execute(count_sql, params).fetchone()[0])
            cursor = conn.execute(sql, params)
            while rows := cursor.fetchmany(self.config.batch_size):
                columns = [
                    pa.array([_convert(r[i], f.type) for r in rows], type=f.type)
                    for i, f in enumerate(schema)
                ]
                yield pa.RecordBatch.from_arrays(columns, schema=schema)
