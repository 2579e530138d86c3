"""MySQL rows → Arrow without Python objects: connectorx reads the result set into Arrow in Rust.

connectorx (binary protocol) hands back Arrow columns; each is then cast to the type of the
mapping table (``types.py``), exactly as the PyMySQL path (``read.py``) would produce it:

- temporal columns are selected as text, because connectorx aborts the whole read on a
  value its types cannot hold (a zero date, TIME beyond a day) where Tidemark reads NULL
  and counts it; Arrow parses the text in bulk, and only a batch that holds such a value
  goes through the per-value rules of ``read.py``;
- decimals beyond 28 digits or 10 decimal places, which connectorx's decimal would cut, are
  selected as text and parsed exactly; BIT columns as the number they hold (``+ 0``);
- an ENUM or SET of a binary character set arrives as bytes and is decoded as ``read.py`` does.

connectorx takes no bound parameters, so the plan's values (the cursor, a key range) are
rendered as literals; only numbers, dates and timestamps are (no text can reach the SQL
this way), and a plan bounded by any other value is read by PyMySQL instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from tidemark.connectors.base import ReadWarnings
from tidemark.connectors.sql.config import SqlConfig
from tidemark.connectors.sql.mysql.config import NET_WRITE_TIMEOUT
from tidemark.connectors.sql.mysql.read import NULL_DATE, NULL_TIME, Decoders, _date, _datetime, _time
from tidemark.connectors.sql.mysql.types import bit_width
from tidemark.connectors.sql.plan import Dialect, ReadPlan
from tidemark.connectors.sql.tables import SqlColumn

# connectorx's decimal (rust_decimal) holds 28 significant digits; beyond, or past 10 places, it cuts.
CX_DECIMAL = pa.decimal128(38, 10)
CX_DIGITS, CX_SCALE = 28, 10
PRE_QUERIES = ["SET time_zone = '+00:00'", f"SET net_write_timeout = {NET_WRITE_TIMEOUT}"]
TEMPORAL_AS_TEXT = "CAST({} AS CHAR)"
COUNT_VARIABLE = "@tidemark_rows"
COUNT_COLUMN = "__tidemark_rows"

ArrowDecoder = Callable[[pa.Array], pa.Array]


def url(config: SqlConfig) -> str:
    """The connection URL connectorx takes (it holds the password: never log it; errors are scrubbed)."""
    host = f"[{config.host}]" if ":" in config.host else config.host
    auth = f"{quote(config.user, safe='')}:{quote(config.password.get_secret_value(), safe='')}"
    return f"mysql://{auth}@{host}:{config.port}/{quote(config.database, safe='')}"


def _is_decimal_source(column: SqlColumn) -> bool:
    return column.source_type.lower().startswith(("decimal", "numeric", "dec", "fixed"))


def select_expr(column: SqlColumn) -> str:
    """How the columnar read selects ``column`` (``{}`` is the quoted name)."""
    typ = column.arrow_type
    if bit_width(column) is not None:
        return "{} + 0"
    if pa.types.is_date(typ) or pa.types.is_timestamp(typ) or pa.types.is_time(typ):
        return TEMPORAL_AS_TEXT
    if pa.types.is_decimal(typ) and (typ.precision - typ.scale > CX_DIGITS - CX_SCALE or typ.scale > CX_SCALE):
        return TEMPORAL_AS_TEXT
    if pa.types.is_string(typ) and _is_decimal_source(column):
        return TEMPORAL_AS_TEXT  # a decimal wider than Arrow's, read as its exact text
    if column.source_type.lower().startswith("json"):
        return TEMPORAL_AS_TEXT  # MySQL's JSON type is not text to connectorx
    return column.select


def literal(value: Any) -> str | None:
    """``value`` as a SQL literal when it is a number, date or timestamp; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else None
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return f"'{value.isoformat(sep=' ')}'" if value.tzinfo is None else None
    if isinstance(value, date):
        return f"'{value.isoformat()}'"
    return None


def render(dialect: Dialect, plan: ReadPlan) -> str | None:
    """``plan`` as one SQL text for connectorx; None when a bound value cannot be a literal."""
    columnar = ReadPlan(table=plan.table, columns=tuple(_with_select(c) for c in plan.columns), cursor=plan.cursor,
                        order_by=plan.order_by, key_range=plan.key_range)
    sql, params = dialect.render(columnar)
    literals = [literal(p) for p in params]
    if any(lit is None for lit in literals):
        return None
    # The dialect doubled every `%` of an identifier for PyMySQL's formatting; this undoes it.
    return sql % tuple(literals)


def counted(dialect: Dialect, plan: ReadPlan, sql: str) -> tuple[str, list[str]] | None:
    """``sql`` reading the count of its rows as its first column, and the statements connectorx runs
    before it on the same connection: a REPEATABLE READ snapshot and the count in it (connectorx
    returns no result of its own but the rows, so the count rides along as a constant column)."""
    count_sql = render(dialect, dataclasses.replace(plan, order_by=None))
    if count_sql is None or not sql.startswith("SELECT "):
        return None
    before = ["SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
              "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
              f"SELECT COUNT(*) INTO {COUNT_VARIABLE} FROM ({count_sql}) AS tidemark_count"]  # noqa: S608
    return f"SELECT CAST({COUNT_VARIABLE} AS SIGNED) AS `{COUNT_COLUMN}`, {sql[len('SELECT '):]}", before


def _with_select(column: SqlColumn) -> SqlColumn:
    return SqlColumn(name=column.name, source_type=column.source_type, arrow_type=column.arrow_type,
                     nullable=column.nullable, select=select_expr(column), warning=column.warning,
                     default=column.default)


class ColumnarDecoders(Decoders):
    """Casts connectorx's batches to the plan's schema, with :class:`Decoders`' rules and counts."""

    def __init__(self, plan: ReadPlan, warnings: ReadWarnings) -> None:
        super().__init__(plan, warnings)
        self.columnar = [self._columnar(c) for c in plan.columns]

    def arrow_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = [decode(batch.column(i)) for i, decode in enumerate(self.columnar)]
        self.rows_before += batch.num_rows
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _columnar(self, column: SqlColumn) -> ArrowDecoder:
        typ = column.arrow_type
        width = bit_width(column)
        if pa.types.is_boolean(typ):
            return lambda a: pc.not_equal(a, pa.scalar(0, a.type))
        if width is not None:
            return lambda a: self._fit(column, a)
        if pa.types.is_time(typ):
            return lambda a: self._per_value(column, a.to_pylist(), _time, NULL_TIME)
        if pa.types.is_date(typ):
            return lambda a: self._text(column, a, _date)
        if pa.types.is_timestamp(typ):
            return lambda a: self._text(column, a, _datetime)
        if pa.types.is_string(typ):
            return lambda a: self._string(column, a)
        return lambda a: self._fit(column, a)

    def _fit(self, column: SqlColumn, values: pa.Array) -> pa.Array:
        typ = column.arrow_type
        if values.type == typ:
            return values
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            try:
                return values.cast(typ)  # exact text of a wide decimal
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return self._cast(column, values.to_pylist(), typ)  # raises read.py's error naming the value
        try:
            return values.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            shown = values.to_pylist()
            i = next((n for n, v in enumerate(shown) if v is not None and not _fits(v, values.type, typ)), 0)
            raise self._unfit(column, i, str(shown[i])) from exc

    def _text(self, column: SqlColumn, values: pa.Array, parse: Callable[[str], Any]) -> pa.Array:
        typ = column.arrow_type
        text = values.cast(pa.string())
        try:
            if pa.types.is_timestamp(typ) and typ.tz is not None:
                return text.cast(pa.timestamp(typ.unit)).cast(typ)  # naive text in a UTC session
            return text.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return self._per_value(column, text.to_pylist(), parse, NULL_DATE)

    def _string(self, column: SqlColumn, values: pa.Array) -> pa.Array:
        if pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type):
            # A binary character set: bytes that may not be UTF-8, replaced and counted as read.py does.
            return self._strings(column, values.to_pylist())
        return values if values.type == pa.string() else values.cast(pa.string())


def _fits(value: Any, source: pa.DataType, target: pa.DataType) -> bool:
    try:
        pa.array([value], source).cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def stream_batches(reader: Iterator[pa.RecordBatch], plan: ReadPlan, warnings: ReadWarnings,
                   count: Callable[[int], None] | None = None) -> Iterator[pa.RecordBatch]:
    """Decode connectorx's batches; with ``count``, their first column is the snapshot's row count
    (see :func:`counted`), handed to ``count`` once and dropped."""
    decoders = ColumnarDecoders(plan, warnings)
    counted = count is None
    try:
        for batch in reader:
            if not batch.num_rows:
                continue
            if count is not None:
                if not counted:
                    rows = batch.column(0)[0].as_py()
                    if rows is not None:
                        count(int(rows))
                    counted = True
                batch = batch.select(list(range(1, batch.num_columns)))  # every batch has the count first
            yield decoders.arrow_batch(batch)
    finally:
        decoders.report()
