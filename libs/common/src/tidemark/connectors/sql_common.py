"""What every SQL source shares: config fields, the table model, cursor bounds, query
shapes, rows → Arrow batches, and the check/discover/read skeleton.

A database module supplies a :class:`Dialect` (quoting, placeholders, how a value
is bound) and the hooks of :class:`SqlSource` (connect, list tables, run a plan,
translate driver errors). Everything that decides *which* rows a mode reads lives
here, once, so the four databases cannot disagree about it.
"""

from __future__ import annotations

import abc
import itertools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import Field, SecretStr

from tidemark.connectors.base import (
    Catalog,
    ColumnInfo,
    ConnectorConfig,
    KeyRange,
    Source,
    StreamInfo,
    StreamState,
)
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode
from tidemark.logs import fields

log = logging.getLogger("tidemark.connectors")

TlsMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]


class SqlConfig(ConnectorConfig):
    """Connection fields every SQL source has; each database sets its own default port."""

    host: str = Field(description="Host name or IP address of the database server.")
    port: int = Field(ge=1, le=65535, description="TCP port of the database server.")
    database: str = Field(description="Database to connect to.")
    user: str = Field(description="User to connect as; it needs SELECT on the tables to read.")
    password: SecretStr = Field(default=SecretStr(""), description="Password of `user` (empty: none).")
    tls_mode: TlsMode = Field(
        default="prefer",
        description="`disable`, `prefer` (TLS when the server offers it), `require` (TLS, unverified), "
                    "`verify-ca` (TLS, server certificate signed by `tls_ca`), "
                    "`verify-full` (and its name matches `host`).",
    )
    tls_ca: str | None = Field(
        default=None, description="PEM of the CA certificate(s) that sign the server's certificate (verify modes)."
    )
    schemas: list[str] = Field(default_factory=list, description="Schemas to include; all readable ones when empty.")
    tables: list[str] = Field(
        default_factory=list, description="Streams (`schema.table`) to include; all in `schemas` when empty."
    )
    batch_size: int = Field(default=50_000, ge=1, le=1_000_000, description="Most rows in one Arrow batch.")
    connect_timeout_seconds: int = Field(default=10, ge=1, le=300, description="Give up connecting after this long.")


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class SqlColumn:
    """A column as a source reads it: ``select`` is the SQL expression, ``{}`` being the
    quoted column itself (a database casts awkward types to text server-side this way)."""

    name: str
    source_type: str
    arrow_type: pa.DataType
    nullable: bool = True
    select: str = "{}"
    warning: str | None = None


@dataclass(frozen=True)
class SqlTable:
    namespace: str
    name: str
    columns: tuple[SqlColumn, ...]
    primary_key: tuple[str, ...] = ()
    is_view: bool = False

    @property
    def stream(self) -> str:
        return f"{self.namespace}.{self.name}"

    def column(self, name: str) -> SqlColumn | None:
        return next((c for c in self.columns if c.name == name), None)


def is_cursor_type(typ: pa.DataType) -> bool:
    """Types whose order is meaningful and exact: integers, decimals, dates, timestamps."""
    return bool(pa.types.is_integer(typ) or pa.types.is_decimal(typ) or pa.types.is_date(typ)
                or pa.types.is_timestamp(typ))


def stream_info(table: SqlTable) -> StreamInfo:
    return StreamInfo(
        name=table.stream,
        columns=[ColumnInfo(name=c.name, type=str(c.arrow_type), nullable=c.nullable, source_type=c.source_type)
                 for c in table.columns],
        primary_key=list(table.primary_key),
        cursor_candidates=[c.name for c in table.columns if is_cursor_type(c.arrow_type)],
    )


def split_stream(name: str) -> tuple[str, str]:
    """``schema.table`` → parts; the first dot splits (a source resolves dotted names exactly)."""
    namespace, dot, table = name.partition(".")
    if not dot or not namespace or not table:
        raise SourceError(f"stream {name!r}: expected a name of the form `schema.table`", FailureKind.CONFIG)
    return namespace, table


# --------------------------------------------------------------------------- cursor


def coerce_cursor(value: Any, typ: pa.DataType) -> Any:
    """A state's cursor value (typed, or its JSON text) as the Python value of ``typ``."""
    try:
        if pa.types.is_timestamp(typ):
            if isinstance(value, datetime):
                parsed = value
            elif isinstance(value, date):
                parsed = datetime(value.year, value.month, value.day)
            else:
                parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if typ.tz is None:
                # A naive column holds wall-clock values: compare like with like.
                return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        if pa.types.is_date(typ):
            if isinstance(value, datetime):
                return value.date()
            return value if isinstance(value, date) else date.fromisoformat(str(value))
        if pa.types.is_integer(typ):
            if isinstance(value, bool):
                raise TypeError("a boolean is not an integer cursor")
            as_decimal = Decimal(str(value))
            if as_decimal != as_decimal.to_integral_value():
                raise ValueError("not an integer")
            return int(as_decimal)
        if pa.types.is_decimal(typ):
            return value if isinstance(value, Decimal) else Decimal(str(value))
        if pa.types.is_floating(typ):
            return float(value)
        if pa.types.is_string(typ) or pa.types.is_large_string(typ):
            return str(value)
        if pa.types.is_time(typ):
            return value if isinstance(value, time) else time.fromisoformat(str(value))
    except (TypeError, ValueError, InvalidOperation) as exc:
        raise SourceError(f"the saved cursor value {value!r} is not a valid {typ}", FailureKind.CONFIG) from exc
    return value


def subtract_lookback(value: Any, lookback: int, typ: pa.DataType, stream: str) -> Any:
    """``value - lookback``: seconds for dates and timestamps, cursor units for numbers."""
    if lookback == 0:
        return value
    if pa.types.is_timestamp(typ):
        return value - timedelta(seconds=lookback)
    if pa.types.is_date(typ):
        return value - timedelta(days=math.ceil(lookback / 86_400))
    if pa.types.is_integer(typ):
        return value - lookback
    if pa.types.is_decimal(typ):
        return value - Decimal(lookback)
    if pa.types.is_floating(typ):
        return value - float(lookback)
    raise SourceError(
        f"stream {stream!r}: a lookback needs a numeric, date or timestamp cursor, not {typ}", FailureKind.CONFIG
    )


@dataclass(frozen=True)
class CursorFilter:
    column: SqlColumn
    op: Literal[">=", ">"]
    value: Any


def cursor_bound(
    spec: StreamSpec, state: StreamState | None, cursor_type: pa.DataType
) -> tuple[Literal[">=", ">"], Any] | None:
    """Which rows past the saved cursor a mode reads, as ``(operator, typed value)``.

    Full refresh reads everything. ``incremental`` reads ``cursor >= last - lookback``:
    the boundary row is read again on purpose, because rows committed late with the same
    cursor value would otherwise be lost, and the merge on the key makes re-reading harmless.
    ``incremental_append`` reads ``cursor > last``: an append must never see a row twice.
    """
    if spec.sync_mode is SyncMode.FULL_REFRESH or state is None or state.cursor_value is None:
        return None
    if state.cursor_field and state.cursor_field != spec.cursor_field:
        if spec.sync_mode is SyncMode.INCREMENTAL_APPEND:
            raise SourceError(
                f"stream {spec.name!r}: the saved state is for cursor {state.cursor_field!r}, the stream now uses "
                f"{spec.cursor_field!r}; resync the stream so no row is appended twice", FailureKind.CONFIG)
        log.warning("cursor changed: reading the whole stream once",
                    extra=fields(stream=spec.name, old=state.cursor_field, new=spec.cursor_field))
        return None
    value = coerce_cursor(state.cursor_value, cursor_type)
    if spec.sync_mode is SyncMode.INCREMENTAL_APPEND:
        return ">", value
    if spec.lookback:
        value = subtract_lookback(value, spec.lookback, cursor_type, spec.name)
    return ">=", value


def cursor_filter(spec: StreamSpec, state: StreamState | None, table: SqlTable) -> CursorFilter | None:
    """:func:`cursor_bound` on ``table``'s cursor column (which must exist)."""
    if spec.sync_mode is SyncMode.FULL_REFRESH:
        return None
    if not spec.cursor_field:
        raise SourceError(f"stream {spec.name!r}: {spec.sync_mode.value} needs a cursor field", FailureKind.CONFIG)
    column = table.column(spec.cursor_field)
    if column is None:
        raise SourceError(f"stream {spec.name!r}: unknown cursor column {spec.cursor_field!r}", FailureKind.CONFIG)
    bound = cursor_bound(spec, state, column.arrow_type)
    return None if bound is None else CursorFilter(column, bound[0], bound[1])


# --------------------------------------------------------------------------- plans and SQL


@dataclass(frozen=True)
class ReadPlan:
    """Everything one read needs: the table, selected columns, the rows to read and their order."""

    table: SqlTable
    columns: tuple[SqlColumn, ...]
    cursor: CursorFilter | None = None
    order_by: SqlColumn | None = None
    key_range: KeyRange | None = None

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns])


class Dialect(abc.ABC):
    """How one database spells identifiers, placeholders and bound values."""

    @abc.abstractmethod
    def quote(self, identifier: str) -> str: ...

    def table_sql(self, table: SqlTable) -> str:
        return f"{self.quote(table.namespace)}.{self.quote(table.name)}"

    def placeholder(self, column: SqlColumn, index: int) -> str:
        """The SQL for the ``index``-th bound value compared with ``column``."""
        return "%s"

    def bind(self, value: Any, column: SqlColumn) -> Any:
        """The driver value for a typed Python ``value`` compared with ``column``."""
        return value

    def select_expr(self, column: SqlColumn) -> str:
        quoted = self.quote(column.name)
        if column.select == "{}":
            return quoted
        return f"{column.select.format(quoted)} AS {quoted}"

    def limit(self, sql: str, rows: int) -> str:
        return f"{sql} LIMIT {int(rows)}"

    def render(self, plan: ReadPlan) -> tuple[str, list[Any]]:
        """``SELECT`` for ``plan``; identifiers quoted, every value a bound parameter."""
        params: list[Any] = []
        where: list[str] = []

        def bound(column: SqlColumn, value: Any) -> str:
            params.append(self.bind(value, column))
            return self.placeholder(column, len(params) - 1)

        if plan.cursor is not None:
            c = plan.cursor
            where.append(f"{self.quote(c.column.name)} {c.op} {bound(c.column, c.value)}")
        if plan.key_range is not None:
            key = plan.table.column(plan.key_range.column)
            if key is None:
                raise SourceError(f"stream {plan.table.stream!r}: unknown key column {plan.key_range.column!r}",
                                  FailureKind.CONFIG)
            if plan.key_range.lower is not None:
                value = coerce_cursor(plan.key_range.lower, key.arrow_type)
                where.append(f"{self.quote(key.name)} >= {bound(key, value)}")
            if plan.key_range.upper is not None:
                value = coerce_cursor(plan.key_range.upper, key.arrow_type)
                where.append(f"{self.quote(key.name)} < {bound(key, value)}")
        # Identifiers are quoted by the dialect and values are parameters: nothing user-given is spliced.
        sql = f"SELECT {', '.join(self.select_expr(c) for c in plan.columns)} FROM {self.table_sql(plan.table)}"  # noqa: S608
        if where:
            sql += " WHERE " + " AND ".join(where)
        if plan.order_by is not None:
            sql += f" ORDER BY {self.quote(plan.order_by.name)}"
        return sql, params


def quote_with(identifier: str, open_: str, close: str) -> str:
    """Quote ``identifier`` by doubling the closing quote character inside it."""
    if "\x00" in identifier:
        raise SourceError("identifiers cannot contain NUL characters", FailureKind.CONFIG)
    return open_ + identifier.replace(close, close + close) + close


def integer_ranges(column: str, low: int, high: int, count: int) -> list[KeyRange]:
    """``count`` ranges of equal width over ``[low, high]``; the outer ones are open-ended so
    rows inserted beyond the extremes while reading are not lost."""
    step = max(1, -(-(high - low + 1) // count))
    bounds = [str(low + step * i) for i in range(1, count) if low + step * i <= high]
    edges: list[str | None] = [None, *bounds, None]
    return [KeyRange(column=column, lower=lo, upper=hi) for lo, hi in itertools.pairwise(edges)]


# --------------------------------------------------------------------------- rows → Arrow

Converter = Callable[[Any], Any]


def _to_utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def _to_text(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _to_decimal(value: Any) -> Any:
    if isinstance(value, Decimal) and not value.is_finite():
        return None  # NaN and ±Infinity have no decimal form; counted by the caller's warning
    return value


def _flatten(value: Any) -> Any:
    # A multi-dimensional array value in a column declared one-dimensional: read its elements
    # in order, as the binary COPY path does.
    if not any(isinstance(v, list) for v in value):
        return value
    flat: list[Any] = []
    for v in value:
        flat.extend(_flatten(v) if isinstance(v, list) else [v])
    return flat


def default_converter(typ: pa.DataType) -> Converter | None:
    """Per-value fix-ups row drivers need before ``pa.array``; None when values go in as they are."""
    if pa.types.is_list(typ):
        return _flatten
    if pa.types.is_timestamp(typ):
        return _to_utc
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return _to_text
    if pa.types.is_decimal(typ):
        return _to_decimal
    return None


SHOWN_VALUE_CHARS = 40
_ARRAY_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, TypeError,
                 ValueError)


def shown_value(value: Any) -> str:
    """A value as an error message quotes it: its text, cut to ``SHOWN_VALUE_CHARS``."""
    text = bytes(value).decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else str(value)
    return repr(text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS] + "…")


def unfit_value(stream: str, column: str, source_type: str | None, typ: pa.DataType, row: int | None,
                value: Any, where: str = "") -> SourceError:
    """The error for a value ``typ`` cannot hold: which column, which type, which row, which value.

    ``row`` counts from 1 in the order the read returned rows (a read by key range counts
    within its range); ``where`` replaces the position when only a batch-relative one is known."""
    declared = f"{source_type}, read as {typ}" if source_type else str(typ)
    position = where or f"row {row} (counting from 1 in read order)"
    return SourceError(
        f"stream {stream!r}: column {column!r} ({declared}) cannot hold the value {shown_value(value)} "
        f"at {position}",
        FailureKind.TERMINAL, column=column, type=str(typ), row=row,
    )


def first_unfit(values: Sequence[Any], to_array: Callable[[Sequence[Any]], pa.Array]) -> int:
    """The index of the first value ``to_array`` refuses on its own (0 when none does alone)."""
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            to_array([v])
        except _ARRAY_ERRORS:
            return i
    return 0


def rows_to_batch(
    rows: Sequence[Sequence[Any]],
    schema: pa.Schema,
    converters: Sequence[Converter | None],
    stream: str,
    first_row: int | None = None,
) -> pa.RecordBatch:
    """Rows (tuples from a DB-API cursor) → one record batch of ``schema``.

    ``first_row`` is how many rows of the read came before these, so an error can name the
    row's position in the read; without it the error names the row within this batch."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for values, fld, convert in zip(columns, schema, converters, strict=True):
        data: Sequence[Any] = values
        if convert is not None:
            data = [None if v is None else convert(v) for v in values]
        try:
            arrays.append(pa.array(data, type=fld.type))
        except _ARRAY_ERRORS as exc:
            typ = fld.type
            i = first_unfit(data, lambda one: pa.array(one, type=typ))  # noqa: B023 - called at once
            row, where = (first_row + i + 1, "") if first_row is not None else (None, f"row {i + 1} of a batch")
            raise unfit_value(stream, fld.name, None, fld.type, row, values[i], where) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def rebatch(batches: Iterator[pa.RecordBatch], max_rows: int) -> Iterator[pa.RecordBatch]:
    """Slice batches so none holds more than ``max_rows`` rows (slices share memory)."""
    for batch in batches:
        for offset in range(0, batch.num_rows, max_rows):
            yield batch.slice(offset, max_rows)


# --------------------------------------------------------------------------- errors


def scrub(message: str, secret: str) -> str:
    """``message`` without ``secret`` in it (drivers sometimes echo connection strings)."""
    if secret and secret in message:
        return message.replace(secret, "***")
    return message


@dataclass
class ErrorRule:
    """Driver error text → a user-facing message and failure kind (first match wins)."""

    needles: tuple[str, ...]
    kind: FailureKind
    message: str
    field: str | None = None


def classify(text: str, rules: Sequence[ErrorRule], fmt: dict[str, Any]) -> tuple[str, FailureKind, str | None] | None:
    lowered = text.lower()
    for rule in rules:
        if any(n in lowered for n in rule.needles):
            return rule.message.format(**fmt), rule.kind, rule.field
    return None


# --------------------------------------------------------------------------- the source skeleton


@dataclass
class _Cache:
    tables: dict[str, SqlTable] = field(default_factory=dict)


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

    # -- protocol ----------------------------------------------------------

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
        order_by = None
        if spec.sync_mode is not SyncMode.FULL_REFRESH and spec.cursor_field:
            order_by = table.column(spec.cursor_field)
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

    def source_key(self, stream: StreamSpec) -> list[str]:
        key = list(self.table(stream.name).primary_key)
        selected = stream.columns
        return key if selected is None or set(key) <= set(selected) else []

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
