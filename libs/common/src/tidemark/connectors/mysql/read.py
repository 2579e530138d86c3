"""MySQL rows → Arrow, in bulk.

PyMySQL is pure Python; converting each value to a Python object is most of its cost.
So it is asked for raw text (no decoders) and Arrow's C++ casts parse whole columns
at once. Values Arrow refuses (zero dates, TIME beyond a day) fall back to a per-value
path that reads them as NULL and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pymysql.converters  # type: ignore[import-untyped]

from tidemark.connectors.mysql.types import bit_width
from tidemark.connectors.sql_common import ReadPlan, SqlColumn
from tidemark.errors import FailureKind, SourceError
from tidemark.logs import fields

log = logging.getLogger("tidemark.connectors")

# Encoders only (keyed by Python type): parameters are still escaped by PyMySQL,
# but results come back as the server's text.
RAW_CONVERSIONS = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}

Decoder = Callable[[Sequence[Any]], pa.Array]


class Decoders:
    def __init__(self, plan: ReadPlan) -> None:
        self.stream = plan.table.stream
        self.nulled: dict[str, int] = {}
        self.decoders = [self._decoder(c) for c in plan.columns]
        self.schema = plan.schema

    def batch(self, rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
        columns = list(zip(*rows, strict=True))
        arrays = [decode(values) for decode, values in zip(self.decoders, columns, strict=True)]
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
            return lambda v: pa.array([None if x is None else int.from_bytes(x, "big") for x in v], typ)
        if pa.types.is_time(typ):
            return lambda v: self._per_value(column, v, _time)
        if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
            parse: Callable[[str], Any] = _date if pa.types.is_date(typ) else _datetime
            return lambda v: self._cast(column, v, typ, fallback=parse)
        if pa.types.is_binary(typ):
            return lambda v: pa.array(v, typ)
        if pa.types.is_string(typ):
            return lambda v: self._strings(column, v)
        return lambda v: self._cast(column, v, typ)

    def _strings(self, column: SqlColumn, values: Sequence[Any]) -> pa.Array:
        try:
            return pa.array(values, pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Bytes from a binary-collated column that are not UTF-8.
            return pa.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values],
                            pa.string())

    def _cast(self, column: SqlColumn, values: Sequence[Any], typ: pa.DataType,
              fallback: Callable[[str], Any] | None = None) -> pa.Array:
        text = pa.array(values, pa.string())
        try:
            if pa.types.is_timestamp(typ) and typ.tz is not None:
                return text.cast(pa.timestamp(typ.unit)).cast(typ)  # naive text in a UTC session
            return text.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            if fallback is None:
                raise SourceError(
                    f"stream {self.stream!r}: column {column.name!r} holds a value that does not fit {typ}: {exc}",
                    FailureKind.TERMINAL, column=column.name,
                ) from exc
            return self._per_value(column, values, fallback)

    def _per_value(self, column: SqlColumn, values: Sequence[Any], parse: Callable[[str], Any]) -> pa.Array:
        out: list[Any] = []
        for v in values:
            parsed = None if v is None else parse(v.decode() if isinstance(v, bytes) else v)
            if parsed is None and v is not None:
                self.nulled[column.name] = self.nulled.get(column.name, 0) + 1
            out.append(parsed)
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


def stream_rows(cursor: Any, plan: ReadPlan, batch_size: int) -> Iterator[pa.RecordBatch]:
    decoders = Decoders(plan)
    while rows := cursor.fetchmany(batch_size):
        yield decoders.batch(rows)
    decoders.report()
