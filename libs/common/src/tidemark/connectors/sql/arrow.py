"""Rows from a DB-API cursor → Arrow record batches, with errors that name the unfit value."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from tidemark.errors import FailureKind, SourceError

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
