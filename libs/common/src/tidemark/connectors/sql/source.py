"""The check/discover/read skeleton every SQL source shares.

A database module supplies a :class:`Dialect` (quoting, placeholders, how a value
is bound) and the hooks of :class:`SqlSource` (connect, list tables, run a plan,
translate driver errors). Everything that decides *which* rows a mode reads lives
in this package, once, so the databases cannot disagree about it."""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from tidemark.connectors.base import Catalog, ConnectorConfig, KeyRange, Source, StreamState
from tidemark.connectors.sql.config import SqlConfig
from tidemark.connectors.sql.cursor import cursor_filter
from tidemark.connectors.sql.fingerprint import digest
from tidemark.connectors.sql.plan import Dialect, ReadPlan
from tidemark.connectors.sql.tables import SqlColumn, SqlTable, is_cursor_type, split_stream, stream_info
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode
from tidemark.logs import fields

log = logging.getLogger("tidemark.connectors")

# From this many streams a run looks up, listing the source's tables once is cheaper than a
# connection and a catalog query per stream.
PREPARE_AT_ONCE = 8


@dataclass
class _Cache:
    tables: dict[str, SqlTable] = field(default_factory=dict)


def needs_order(spec: StreamSpec, table: SqlTable) -> bool:
    """Whether a read must come in cursor order: only when a merge may see one key twice.

    State is committed once per run (the largest cursor seen, see ``lakehouse.state``) and a
    failed run commits nothing, so the order of rows never decides which rows the next run
    reads. It decides one thing: when a merge key repeats within a read, the row read last
    wins. A key that covers the table's declared primary key cannot repeat in one statement
    (one snapshot of the table), so only merges on other keys (a view, a key the user chose
    narrower than the table's) pay for ``ORDER BY``, to keep "the newest version wins".
    """
    if spec.sync_mode is not SyncMode.INCREMENTAL:
        return False
    declared = set(table.primary_key)
    return not declared or not declared <= set(spec.primary_key)


class SqlSource(Source):
    """``check``, ``discover``, ``arrow_schema`` and ``read`` for any SQL database."""

    dialect: ClassVar[Dialect]
    config: SqlConfig

    def __init__(self, config: ConnectorConfig) -> None:
        if not isinstance(config, SqlConfig):
            raise TypeError(f"{type(self).__name__} needs a {self.config_model.__name__}")
        super().__init__(config)
        self._cache = _Cache()

    # -- hooks -------------------------------------------------------------

    @abc.abstractmethod
    def connect(self) -> AbstractContextManager[Any]:
        """A DB-API connection for catalog queries; raises :class:`SourceError` when it cannot."""

    @abc.abstractmethod
    def list_tables(self, conn: Any, stream: str | None = None) -> list[SqlTable]:
        """Readable tables and views in the configured scope (only ``stream`` when given)."""

    @abc.abstractmethod
    def check_access(self, conn: Any) -> None:
        """Raise a CONFIG :class:`SourceError` naming what the user may not read."""

    @abc.abstractmethod
    def execute(self, plan: ReadPlan) -> Iterator[pa.RecordBatch]:
        """Run ``plan`` and yield its batches of ``plan.schema``."""

    def fingerprint_query(self) -> tuple[str, Sequence[Any]] | None:
        """One catalog query answering one row that changes when the catalog does (see
        :mod:`tidemark.connectors.sql.fingerprint`); ``None`` when the database has none."""
        return None

    # -- protocol ----------------------------------------------------------

    def fingerprint(self) -> str | None:
        query = self.fingerprint_query()
        if query is None:
            return None
        sql, params = query
        with self.connect() as conn:
            cur = conn.cursor()
            try:
                cur.execute(sql, tuple(params) or None)
                return digest(cur.fetchone())
            finally:
                cur.close()

    def check(self) -> None:
        with self.connect() as conn:
            self.check_access(conn)

    def discover(self) -> Catalog:
        with self.connect() as conn:
            tables = self.list_tables(conn)
        for table in tables:
            self._cache.tables[table.stream] = table
            for column in table.columns:
                if column.warning:
                    log.warning(column.warning, extra=fields(stream=table.stream, column=column.name))
        return Catalog(streams=[stream_info(t) for t in tables])

    def prepare(self, streams: Sequence[StreamSpec]) -> None:
        wanted = {s.name for s in streams} - set(self._cache.tables)
        if len(wanted) < PREPARE_AT_ONCE:
            return  # a lookup per stream is cheaper than listing a scope that may hold thousands of tables
        with self.connect() as conn:
            tables = self.list_tables(conn)
        for table in tables:
            if table.stream in wanted:
                self._cache.tables[table.stream] = table

    def table(self, stream: str) -> SqlTable:
        cached = self._cache.tables.get(stream)
        if cached is not None:
            return cached
        split_stream(stream)
        with self.connect() as conn:
            found = [t for t in self.list_tables(conn, stream) if t.stream == stream]
        if not found:
            raise SourceError(f"stream {stream!r} does not exist in the source, or the user cannot read it",
                              FailureKind.CONFIG, stream=stream)
        self._cache.tables[stream] = found[0]
        return found[0]

    def plan(self, spec: StreamSpec, state: StreamState | None, key_range: KeyRange | None = None) -> ReadPlan:
        table = self.table(spec.name)
        names = spec.columns or [c.name for c in table.columns]
        unknown = [n for n in names if table.column(n) is None]
        if unknown:
            raise SourceError(f"stream {spec.name!r}: unknown columns {unknown}", FailureKind.CONFIG,
                              stream=spec.name, columns=unknown)
        columns = tuple(c for n in names if (c := table.column(n)) is not None)
        for c in columns:
            if c.warning:
                log.warning(c.warning, extra=fields(stream=spec.name, column=c.name))
                self.warnings.add(spec.name, "type_as_text", c.name, c.warning, count=0)
        cursor = cursor_filter(spec, state, table)
        order_by = table.column(spec.cursor_field) if needs_order(spec, table) and spec.cursor_field else None
        if key_range is not None and table.column(key_range.column) is None:
            raise SourceError(f"stream {spec.name!r}: unknown key column {key_range.column!r}", FailureKind.CONFIG)
        return ReadPlan(table=table, columns=columns, cursor=cursor, order_by=order_by, key_range=key_range)

    def arrow_schema(self, stream: StreamSpec) -> pa.Schema:
        return self.plan(stream, None).schema

    def read(self, stream: StreamSpec, state: StreamState | None) -> Iterator[pa.RecordBatch]:
        yield from self.execute(self.plan(stream, state))

    def read_partition(
        self, stream: StreamSpec, state: StreamState | None, partition: KeyRange
    ) -> Iterator[pa.RecordBatch]:
        yield from self.execute(self.plan(stream, state, partition))

    def declared_key(self, stream: StreamSpec) -> list[str]:
        return list(self.table(stream.name).primary_key)

    def key_column(self, stream: StreamSpec) -> SqlColumn | None:
        """The column :meth:`partitions` splits on: the first primary-key column, if it orders well."""
        table = self.table(stream.name)
        key = stream.primary_key or list(table.primary_key)
        if not key:
            return None
        column = table.column(key[0])
        if column is None or not (is_cursor_type(column.arrow_type) or pa.types.is_string(column.arrow_type)):
            return None
        return column
