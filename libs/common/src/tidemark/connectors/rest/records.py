"""Vendor JSON records to bounded Arrow batches, one converter per Arrow type.

Rules (documented in ``docs/connectors/``): timestamps come as ISO 8601 text (any offset) or
epoch milliseconds and are stored in UTC; numbers come as JSON numbers or text; a decimal
with more fractional digits than its column is rounded half-even; objects and lists in a
string column are stored as JSON text. A value that does not convert becomes null and is
counted as a warning of the stream, never a failed run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from tidemark.connectors.base import ReadWarnings

Converter = Callable[[Any], Any]


def parse_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    elif isinstance(value, str) and value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _date(value: Any) -> date:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC).date()
    text = str(value)
    return date.fromisoformat(text[:10])


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    as_decimal = Decimal(str(value))
    if as_decimal != as_decimal.to_integral_value():
        raise ValueError(f"not an integer: {value!r}")
    return int(as_decimal)


def _string(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def converter(typ: pa.DataType) -> Converter:
    if pa.types.is_timestamp(typ):
        return parse_timestamp
    if pa.types.is_date(typ):
        return _date
    if pa.types.is_boolean(typ):
        return _bool
    if pa.types.is_integer(typ):
        return _int
    if pa.types.is_floating(typ):
        return float
    if pa.types.is_decimal(typ):
        exponent = Decimal(1).scaleb(-typ.scale)
        limit = Decimal(10) ** (typ.precision - typ.scale)

        def _decimal(value: Any) -> Decimal:
            parsed = Decimal(str(value)).quantize(exponent, rounding=ROUND_HALF_EVEN)
            if abs(parsed) >= limit:
                raise ValueError(f"{value!r} does not fit {typ}")
            return parsed
        return _decimal
    return _string


class Batcher:
    """Rows (dicts keyed by column name) in, record batches of ``batch_size`` rows out."""

    def __init__(self, schema: pa.Schema, batch_size: int, stream: str, warnings: ReadWarnings) -> None:
        self.schema = schema
        self.batch_size = batch_size
        self.stream = stream
        self.warnings = warnings
        self._converters = [(f.name, converter(f.type)) for f in schema]
        self._rows: list[dict[str, Any]] = []

    def _convert(self, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, convert in self._converters:
            value = row.get(name)
            if value is None or (value == "" and convert is not _string):
                out[name] = None
                continue
            try:
                out[name] = convert(value)
            except (ValueError, TypeError, InvalidOperation, OverflowError):
                out[name] = None
                self.warnings.add(self.stream, "unconvertible_value", name,
                                  f"values that do not convert to {self.schema.field(name).type} were stored as null")
        return out

    def add(self, row: dict[str, Any]) -> pa.RecordBatch | None:
        self._rows.append(self._convert(row))
        return self.flush() if len(self._rows) >= self.batch_size else None

    def flush(self) -> pa.RecordBatch | None:
        if not self._rows:
            return None
        batch = pa.RecordBatch.from_pylist(self._rows, schema=self.schema)
        self._rows = []
        return batch

    def batches(self, rows: Iterable[dict[str, Any]]) -> Iterator[pa.RecordBatch]:
        for row in rows:
            if (batch := self.add(row)) is not None:
                yield batch
        if (batch := self.flush()) is not None:
            yield batch
