"""The table model a SQL source reads: columns, keys, streams."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from tidemark.connectors.base import ColumnInfo, StreamInfo
from tidemark.errors import FailureKind, SourceError


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
    default: str | None = None


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
        columns=[ColumnInfo(name=c.name, type=str(c.arrow_type), nullable=c.nullable, source_type=c.source_type,
                            default=c.default)
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
