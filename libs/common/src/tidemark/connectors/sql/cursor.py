"""Which rows past a saved cursor each sync mode reads, decided once for every database."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import pyarrow as pa

from tidemark.connectors.base import StreamState
from tidemark.connectors.sql.tables import SqlColumn, SqlTable
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode
from tidemark.logs import fields

log = logging.getLogger("tidemark.connectors")


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
