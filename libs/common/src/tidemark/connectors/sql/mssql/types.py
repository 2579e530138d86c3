"""SQL Server types → Arrow types (the table in docs/connectors/mssql.md)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

MAX_DECIMAL_PRECISION = 38

_SIMPLE: dict[str, pa.DataType] = {
    "bit": pa.bool_(),
    "tinyint": pa.int16(),  # 0..255: unsigned, so the next wider signed type
    "smallint": pa.int16(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "float": pa.float64(),
    "money": pa.decimal128(19, 4),
    "smallmoney": pa.decimal128(10, 4),
    "char": pa.string(), "varchar": pa.string(), "text": pa.string(),
    "nchar": pa.string(), "nvarchar": pa.string(), "ntext": pa.string(),
    "binary": pa.binary(), "varbinary": pa.binary(), "image": pa.binary(),
    "timestamp": pa.binary(), "rowversion": pa.binary(),
    "uniqueidentifier": pa.string(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "datetime": pa.timestamp("us"),
    "smalldatetime": pa.timestamp("us"),
    "datetime2": pa.timestamp("us"),
}

# Types read through an expression the server evaluates, on purpose (no warning).
_EXPRESSIONS: dict[str, tuple[pa.DataType, str]] = {
    # The instant in UTC; the offset itself is not kept.
    "datetimeoffset": (pa.timestamp("us", tz="UTC"), "CONVERT(datetime2(7), SWITCHOFFSET({}, '+00:00'))"),
    "xml": (pa.string(), "CONVERT(nvarchar(max), {})"),
    "json": (pa.string(), "CONVERT(nvarchar(max), {})"),
    "geometry": (pa.string(), "{}.STAsText()"),
    "geography": (pa.string(), "{}.STAsText()"),
    "hierarchyid": (pa.string(), "{}.ToString()"),
}


@dataclass(frozen=True)
class MssqlType:
    name: str
    max_length: int = 0  # bytes; -1 for (max)
    precision: int = 0
    scale: int = 0

    def declared(self) -> str:
        """The type as T-SQL spells it, e.g. ``decimal(12,2)``, ``nvarchar(max)``, ``datetime2(7)``."""
        n = self.name
        if n in ("decimal", "numeric"):
            return f"{n}({self.precision},{self.scale})"
        if n in ("char", "varchar", "binary", "varbinary"):
            return f"{n}({'max' if self.max_length == -1 else self.max_length})"
        if n in ("nchar", "nvarchar"):
            return f"{n}({'max' if self.max_length == -1 else self.max_length // 2})"
        if n in ("datetime2", "time", "datetimeoffset"):
            return f"{n}({self.scale})"
        return n


def map_type(t: MssqlType) -> tuple[pa.DataType, str, str | None]:
    """``(arrow type, select expression, warning)``."""
    if t.name in ("decimal", "numeric"):
        if t.precision > MAX_DECIMAL_PRECISION:
            return pa.string(), "CONVERT(varchar(100), {})", f"{t.declared()} is wider than decimal128: read as text"
        return pa.decimal128(t.precision, t.scale), "{}", None
    if t.name in _SIMPLE:
        return _SIMPLE[t.name], "{}", None
    if t.name in _EXPRESSIONS:
        typ, select = _EXPRESSIONS[t.name]
        return typ, select, None
    return pa.string(), "CONVERT(nvarchar(max), {})", f"unsupported type {t.declared()}: read as text"


def cast_target(declared: str, arrow: pa.DataType) -> str:
    """The type a bound cursor value is cast to before comparing it with a column of ``t``.

    ``datetime`` and ``smalldatetime`` take no more than milliseconds from text, so values
    are compared as ``datetime2(7)``; everything else as the column's own type."""
    if pa.types.is_timestamp(arrow):
        return "datetimeoffset(7)" if arrow.tz else "datetime2(7)"
    return declared
