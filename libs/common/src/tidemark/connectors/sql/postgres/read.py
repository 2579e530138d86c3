"""Reading PostgreSQL into Arrow: ADBC over binary COPY, or psycopg rows as a fallback.

ADBC streams ``COPY (query) TO STDOUT (FORMAT binary)`` straight into Arrow, but only
for a query without bound parameters: with parameters it buffers the whole result.
So the values a read filters on are bound once, as parameters, into session settings
(``set_config``), and the query reads them back with ``current_setting`` — the copy
stays a stream and nothing user-given is ever spliced into SQL text.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import adbc_driver_postgresql.dbapi as adbc  # type: ignore[import-untyped]
import pyarrow as pa
import pyarrow.compute as pc
from psycopg.types.datetime import DateLoader, TimestampLoader, TimestamptzLoader

from tidemark.connectors.base import ReadWarnings
from tidemark.connectors.sql.arrow import Converter, default_converter, rebatch, rows_to_batch
from tidemark.connectors.sql.plan import ReadPlan
from tidemark.connectors.sql.tables import SqlColumn
from tidemark.errors import FailureKind, SourceError
from tidemark.logs import fields

log = logging.getLogger("tidemark.connectors")

BATCH_BYTES_HINT = 16 * 1024 * 1024
SETTING = "tidemark.p{}"
# PostgreSQL's ±infinity (and timestamps past Arrow's year 294247) reach ADBC as the extremes
# of the storage type, shifted from the 2000 to the 1970 epoch with wrap-around: they land
# before 4714-11-24 BC, PostgreSQL's first day, where no real value can be.
_FIRST_TIMESTAMP_US = -210_866_803_200_000_000
_FIRST_DATE_DAYS = -2_440_588
_NOT_A_NUMBER = ("nan", "infinity", "-infinity", "inf", "-inf")


def settings_sql(count: int) -> str:
    """One statement that binds ``count`` values into ``tidemark.p0..`` for the session."""
    calls = [f"set_config('{SETTING.format(i)}', ${i + 1}, false)" for i in range(count)]
    return "SELECT " + (", ".join(calls) if calls else "1")


NULL_NUMBER = "NaN and ±Infinity have no decimal form: read as NULL"
NULL_INFINITY = "±infinity dates and timestamps (and timestamps past the year 294247) have no Arrow form: read as NULL"
REPLACED_TEXT = "bytes that are not UTF-8 were replaced by U+FFFD"


class Conformer:
    """Turns ADBC's arrays into the discovered types, counting what could not be kept."""

    def __init__(self, stream: str, warnings: ReadWarnings) -> None:
        self.stream = stream
        self.warnings = warnings
        self.nulled: dict[str, int] = {}

    def batch(self, batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
        arrays = [self.array(batch.column(i), f.type, f.name) for i, f in enumerate(schema)]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def array(self, arr: pa.Array, target: pa.DataType, name: str) -> pa.Array:
        if isinstance(arr.type, pa.ExtensionType) or isinstance(arr, pa.ExtensionArray):
            arr = arr.storage
        if pa.types.is_list(target) and pa.types.is_list(arr.type):
            values = self.array(arr.values, target.value_type, name)
            return pa.ListArray.from_arrays(arr.offsets, values, type=target, mask=arr.is_null())
        if pa.types.is_decimal(target) and pa.types.is_string(arr.type):
            try:
                return arr.cast(target)
            except pa.ArrowInvalid:
                # Only when the fast cast fails: NaN and ±Infinity have no decimal form.
                special = pc.is_in(pc.utf8_lower(arr), value_set=pa.array(_NOT_A_NUMBER))
                arr = self._null_where(arr, special, name, NULL_NUMBER)
        elif pa.types.is_timestamp(target) and pa.types.is_timestamp(arr.type):
            arr = self._null_where(arr, pc.less(arr.view(pa.int64()), _FIRST_TIMESTAMP_US), name, NULL_INFINITY)
        elif pa.types.is_date32(target) and pa.types.is_date32(arr.type):
            arr = self._null_where(arr, pc.less(arr.view(pa.int32()), _FIRST_DATE_DAYS), name, NULL_INFINITY)
        if arr.type == target:
            return arr
        try:
            return arr.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SourceError(
                f"stream {self.stream!r}: column {name!r} holds a value that does not fit {target}: {exc}",
                FailureKind.TERMINAL, column=name,
            ) from exc

    def _null_where(self, arr: pa.Array, mask: pa.Array, name: str, rule: str) -> pa.Array:
        hits = pc.sum(mask).as_py() or 0
        if not hits:
            return arr
        self.nulled[name] = self.nulled.get(name, 0) + hits
        self.warnings.add(self.stream, "value_as_null", name, rule, hits)
        return pc.if_else(mask, pa.scalar(None, arr.type), arr)

    def report(self) -> None:
        for name, count in self.nulled.items():
            log.warning("values with no Arrow form (NaN, ±infinity) were read as NULL",
                        extra=fields(stream=self.stream, column=name, rows=count))


# The first statement of a read: its count and its rows then come from one snapshot of the database.
SNAPSHOT_SQL = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"


class AdbcConnections:
    """Idle ADBC connections of one source, each reused by one read at a time.

    Opening one costs what the driver's type lookup costs (it loads ``pg_type`` at connect: 0.17 s on
    a database of 500 tables), so a run of many small tables would spend most of its time opening
    them. Only a connection whose read ended normally comes back, its transaction rolled back; one
    whose read failed or was abandoned part way is closed."""

    def __init__(self, keep: int = 16) -> None:
        self.keep = keep
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        # A source dropped without close() still closes what it kept (the driver warns about leaks).
        weakref.finalize(self, _close_all, self._idle)

    @contextmanager
    def connection(self, uri: str) -> Iterator[Any]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = adbc.connect(uri)
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        try:
            conn.rollback()  # ends the read's snapshot; the next statement begins a new transaction
        except adbc.Error:
            conn.close()  # the read itself is complete; only this connection is not worth keeping
            return
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle = list(self._idle)
            self._idle.clear()
        _close_all(idle)


def _close_all(connections: list[Any]) -> None:
    for conn in list(connections):
        with contextlib.suppress(Exception):  # a connection the server already closed
            conn.close()
    connections.clear()


def adbc_batches(connections: AdbcConnections, uri: str, sql: str, params: Sequence[str], plan: ReadPlan,
                 max_rows: int, warnings: ReadWarnings, count_sql: str | None = None,
                 counted: Callable[[int], None] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream ``sql`` through ADBC; ``params`` are the texts of ``tidemark.p0..``. With ``count_sql``,
    its count is taken in the read's own REPEATABLE READ snapshot once the rows are read, and handed to
    ``counted``: after, not before, so the first rows (and the run's progress) do not wait for a scan,
    and a run stopped mid-read never pays for it."""
    conformer = Conformer(plan.table.stream, warnings)
    schema = plan.schema
    try:
        # ADBC opens a transaction (autocommit is off), which the first statement makes a snapshot.
        with connections.connection(uri) as conn, conn.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES_HINT)})
            cur.execute(SNAPSHOT_SQL)
            if params:
                cur.execute(settings_sql(len(params)), parameters=tuple(params))
                cur.fetchall()
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            for batch in rebatch(iter(reader), max_rows):
                yield conformer.batch(batch, schema)
            if count_sql is not None and counted is not None:
                cur.execute(count_sql)
                row = cur.fetchone()
                counted(int(row[0]) if row else 0)
    finally:
        conformer.report()  # also when the read fails part way: what was counted is still told


def register_infinity_loaders(conn: Any, marker: Any = None) -> None:
    """psycopg fails on ±infinity dates and timestamps; read them as ``marker`` instead
    (NULL, or a value a read's converters count and turn into NULL)."""
    infinities = (b"infinity", b"-infinity")

    class _Date(DateLoader):
        def load(self, data: Any) -> Any:
            return marker if bytes(data) in infinities else super().load(data)

    class _Timestamp(TimestampLoader):
        def load(self, data: Any) -> Any:
            return marker if bytes(data) in infinities else super().load(data)

    class _Timestamptz(TimestamptzLoader):
        def load(self, data: Any) -> Any:
            return marker if bytes(data) in infinities else super().load(data)

    conn.adapters.register_loader("date", _Date)
    conn.adapters.register_loader("timestamp", _Timestamp)
    conn.adapters.register_loader("timestamptz", _Timestamptz)


def converters_for(columns: Sequence[SqlColumn]) -> list[Any]:
    return [default_converter(c.arrow_type) for c in columns]


class _Infinity:
    """What the psycopg path's loaders return for ±infinity, so the column's converter can count it."""

    def __repr__(self) -> str:
        return "infinity"


INFINITY = _Infinity()


def _is_temporal(typ: pa.DataType) -> bool:
    return bool(pa.types.is_date(typ) or pa.types.is_timestamp(typ))


class _Counts:
    """What the psycopg path changed by rule: told to the source's warnings after each batch,
    logged once at the end like the ADBC path."""

    def __init__(self, stream: str, warnings: ReadWarnings) -> None:
        self.stream, self.warnings = stream, warnings
        self.pending: dict[tuple[str, str, str], int] = {}
        self.nulled: dict[str, int] = {}

    def counting(self, column: SqlColumn, convert: Converter | None) -> Converter | None:
        """``convert``, counting the NaNs and ±infinities turned into NULL and the text repaired."""
        name, typ = column.name, column.arrow_type
        if pa.types.is_decimal(typ) and convert is not None:
            def decimal(value: Any) -> Any:
                out = convert(value)
                if out is None:
                    self._count(name, "value_as_null", NULL_NUMBER)
                return out
            return decimal
        if pa.types.is_string(typ) or pa.types.is_large_string(typ):
            def text(value: Any) -> Any:
                if isinstance(value, bytes | bytearray | memoryview):
                    try:
                        return bytes(value).decode("utf-8")
                    except UnicodeDecodeError:
                        self._count(name, "text_replaced", REPLACED_TEXT)
                return convert(value) if convert is not None else value
            return text
        if _is_temporal(typ) or (pa.types.is_list(typ) and _is_temporal(typ.value_type)):
            def temporal(value: Any) -> Any:
                if value is INFINITY:
                    self._count(name, "value_as_null", NULL_INFINITY)
                    return None
                if isinstance(value, list):
                    value = [self._finite(name, v) for v in value]
                return convert(value) if convert is not None else value
            return temporal
        return convert

    def _finite(self, column: str, value: Any) -> Any:
        if isinstance(value, list):
            return [self._finite(column, v) for v in value]
        if value is INFINITY:
            self._count(column, "value_as_null", NULL_INFINITY)
            return None
        return value

    def _count(self, column: str, kind: str, rule: str) -> None:
        key = (column, kind, rule)
        self.pending[key] = self.pending.get(key, 0) + 1
        if kind == "value_as_null":
            self.nulled[column] = self.nulled.get(column, 0) + 1

    def flush(self) -> None:
        for (column, kind, rule), count in self.pending.items():
            self.warnings.add(self.stream, kind, column, rule, count)
        self.pending.clear()

    def report(self) -> None:
        self.flush()
        for name, count in self.nulled.items():
            log.warning("values with no Arrow form (NaN, ±infinity) were read as NULL",
                        extra=fields(stream=self.stream, column=name, rows=count))


def psycopg_batches(conn: Any, sql: str, params: Sequence[Any], plan: ReadPlan, max_rows: int,
                    warnings: ReadWarnings, count_sql: str | None = None,
                    counted: Callable[[int], None] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream ``sql`` row by row (libpq chunked mode) into batches of at most ``max_rows``. With
    ``count_sql`` (same parameters), a transaction makes its count and the rows one snapshot; the count
    is taken after the rows (see :func:`adbc_batches`)."""
    schema = plan.schema
    if count_sql is not None and counted is not None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    counts = _Counts(plan.table.stream, warnings)
    register_infinity_loaders(conn, INFINITY)
    converters = [counts.counting(c, convert) for c, convert in zip(plan.columns, converters_for(plan.columns),
                                                                    strict=True)]
    rows: list[Any] = []
    done = 0
    try:
        with conn.cursor() as cur:
            for row in cur.stream(sql, list(params), size=min(max_rows, 10_000)):
                rows.append(row)
                if len(rows) >= max_rows:
                    yield rows_to_batch(rows, schema, converters, plan.table.stream, first_row=done)
                    done += len(rows)
                    rows = []
                    counts.flush()
        if rows:
            yield rows_to_batch(rows, schema, converters, plan.table.stream, first_row=done)
        if count_sql is not None and counted is not None:
            row = conn.execute(count_sql, list(params)).fetchone()
            counted(int(row[0]) if row else 0)
    finally:
        counts.report()  # also when the read fails part way: what was counted is still told
