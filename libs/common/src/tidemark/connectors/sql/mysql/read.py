"""MySQL rows → Arrow, in bulk.

PyMySQL is pure Python; converting each value to a Python object is most of its cost.
So it is asked for raw text (no decoders) and Arrow's C++ casts parse whole columns
at once. Values Arrow refuses (zero dates, TIME beyond a day) fall back to a per-value
path that reads them as NULL and counts them in the source's warnings; any other value
a cast refuses fails the read with an error naming its column, type and row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pymysql.converters  # type: ignore[import-untyped]

from tidemark.connectors.base import ReadWarnings
from tidemark.connectors.sql.arrow import first_unfit, unfit_value
from tidemark.connectors.sql.mysql.types import bit_width
from tidemark.connectors.sql.plan import ReadPlan
from tidemark.connectors.sql.tables import SqlColumn
from tidemark.errors import SourceError
from tidemark.logs import fields

log = logging.getLogger("tidemark.connectors")

# Encoders only (keyed by Python type): parameters are still escaped by PyMySQL,
# but results come back as the server's text.
RAW_CONVERSIONS = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}

Decoder = Callable[[Sequence[Any]], pa.Array]

NULL_DATE = "zero or invalid dates (such as 0000-00-00) have no Arrow form: read as NULL"
NULL_TIME = ("TIME values outside 00:00:00-23:59:59.999999 (negative, or 24:00:00 and beyond) "
             "are not a time of day: read as NULL")
REPLACED_TEXT = "bytes that are not UTF-8 were replaced by U+FFFD"


class Decoders:
    """Decodes a read's batches, counting the values a documented rule changed into ``warnings``."""

    def __init__(self, plan: ReadPlan, warnings: ReadWarnings) -> None:
        self.stream = plan.table.stream
        self.warnings = warnings
        self.nulled: dict[str, int] = {}
        self.rows_before = 0  # rows of the read decoded before the current batch
        self.decoders = [self._decoder(c) for c in plan.columns]
        self.schema = plan.schema

    def batch(self, rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
        columns = list(zip(*rows, strict=True))
        arrays = [decode(values) for decode, values in zip(self.decoders, columns, strict=True)]
        self.rows_before += len(rows)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def report(self) -> None:
        for name, count in self.nulled.items():
            log.warning("values with no Arrow form (zero dates, TIME outside 00:00-24:00) were read as NULL",
                        extra=fields(stream=self.stream, column=name, rows=count))

    # -- per column ---------------------------------------------------------

    def _decoder(self, column: SqlColumn) -> Decoder:
        typ = column.arrow_type
        if pa.types.is_boolean(typ):
            if bit_width(column) == 1:
                return lambda v: pa.array([None if x is None else x != b"\x00" for x in v], pa.bool_())
            return lambda v: pc.not_equal(self._cast(column, v, pa.int64()), 0)
        if bit_width(column) is not None:
            return lambda v: self._bits(column, v)
        if pa.types.is_time(typ):
            return lambda v: self._per_value(column, v, _time, NULL_TIME)
        if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
            parse: Callable[[str], Any] = _date if pa.types.is_date(typ) else _datetime
            return lambda v: self._cast(column, v, typ, fallback=parse)
        if pa.types.is_binary(typ):
            return lambda v: pa.array(v, typ)
        if pa.types.is_string(typ):
            return lambda v: self._strings(column, v)
        return lambda v: self._cast(column, v, typ)

    def _bits(self, column: SqlColumn, values: Sequence[Any]) -> pa.Array:
        ints = [None if x is None else int.from_bytes(x, "big") for x in values]
        try:
            return pa.array(ints, column.arrow_type)
        except (pa.ArrowInvalid, OverflowError) as exc:
            i = first_unfit(ints, lambda one: pa.array(one, column.arrow_type))
            raise self._unfit(column, i, ints[i]) from exc

    def _strings(self, column: SqlColumn, values: Sequence[Any]) -> pa.Array:
        try:
            return pa.array(values, pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Bytes that are not UTF-8, from a column of a binary character set (an ENUM or SET).
            out: list[Any] = []
            replaced = 0
            for v in values:
                if isinstance(v, bytes):
                    try:
                        v = v.decode("utf-8")
                    except UnicodeDecodeError:
                        v = v.decode("utf-8", "replace")
                        replaced += 1
                out.append(v)
            if replaced:
                self.warnings.add(self.stream, "text_replaced", column.name, REPLACED_TEXT, replaced)
            return pa.array(out, pa.string())

    def _cast(self, column: SqlColumn, values: Sequence[Any], typ: pa.DataType,
              fallback: Callable[[str], Any] | None = None) -> pa.Array:
        text = pa.array(values, pa.string())
        try:
            if pa.types.is_timestamp(typ) and typ.tz is not None:
                return text.cast(pa.timestamp(typ.unit)).cast(typ)  # naive text in a UTC session
            return text.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            if fallback is None:
                i = first_unfit(values, lambda one: pa.array(one, pa.string()).cast(typ))
                raise self._unfit(column, i, values[i]) from exc
            return self._per_value(column, values, fallback, NULL_DATE)

    def _unfit(self, column: SqlColumn, index: int, value: Any) -> SourceError:
        return unfit_value(self.stream, column.name, column.source_type, column.arrow_type,
                           self.rows_before + index + 1, value)

    def _per_value(self, column: SqlColumn, values: Sequence[Any], parse: Callable[[str], Any],
                   rule: str) -> pa.Array:
        out: list[Any] = []
        nulled = 0
        for v in values:
            parsed = None if v is None else parse(v.decode() if isinstance(v, bytes) else v)
            if parsed is None and v is not None:
                nulled += 1
            out.append(parsed)
        if nulled:
            self.nulled[column.name] = self.nulled.get(column.name, 0) + nulled
            self.warnings.add(self.stream, "value_as_null", column.name, rule, nulled)
        typ = column.arrow_type
        if pa.types.is_timestamp(typ) and typ.tz is not None:
            return pa.array(out, pa.timestamp(typ.unit)).cast(typ)
        return pa.array(out, typ)


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _datetime(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _time(text: str) -> time | None:
    """MySQL TIME is a duration (-838:59:59 to 838:59:59); only a time of day fits Arrow's time."""
    negative = text.startswith("-")
    hours, _, rest = text.lstrip("-").partition(":")
    minutes, _, seconds = rest.partition(":")
    try:
        span = timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds or 0))
    except ValueError:
        return None
    if negative or span >= timedelta(days=1):
        return None
    return (datetime.min + span).time()


def stream_rows(cursor: Any, plan: ReadPlan, batch_size: int, warnings: ReadWarnings) -> Iterator[pa.RecordBatch]:
    decoders = Decoders(plan, warnings)
    try:
        while rows := cursor.fetchmany(batch_size):
            yield decoders.batch(rows)
    finally:
        decoders.report()  # also when the read fails part way: what was counted is still told
