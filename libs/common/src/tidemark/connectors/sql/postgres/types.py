"""PostgreSQL types → Arrow types (the table in docs/connectors/postgres.md).

Types Arrow has no exact twin for are cast to text by the server (``{}::text``), so the
reader never meets a value it cannot represent; a type this table does not know becomes
a string too, with a warning, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

MAX_DECIMAL_PRECISION = 38  # Iceberg's limit, and decimal128's

NATIVE: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "bytea": pa.binary(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}

# Read as their text form, on purpose and without a warning: the text is the lossless,
# portable representation (UUIDs, JSON documents, network addresses, ISO 8601 intervals).
AS_TEXT = frozenset({
    "uuid", "json", "jsonb", "name", "citext", "xml", "inet", "cidr", "macaddr", "macaddr8",
    "timetz", "interval", "bit", "varbit", "char",
})


@dataclass(frozen=True)
class PgType:
    """What the catalog says about a column's type (domains already resolved to their base)."""

    typname: str
    typtype: str  # b base, e enum, d domain, r range, c composite, m multirange, p pseudo
    typmod: int = -1
    elem_typname: str | None = None  # set for arrays
    elem_typtype: str | None = None
    ndims: int = 0


@dataclass(frozen=True)
class Mapping:
    arrow_type: pa.DataType
    select: str = "{}"
    warning: str | None = None


def numeric_precision_scale(typmod: int) -> tuple[int, int] | None:
    """``numeric(p, s)`` from its type modifier; None for an unconstrained ``numeric``."""
    if typmod < 4:
        return None
    packed = typmod - 4
    scale = packed & 0x7FF
    if scale & 0x400:  # PostgreSQL 15 allows negative scales, stored as 11-bit two's complement
        scale -= 0x800
    return (packed >> 16) & 0xFFFF, scale


def _numeric(typmod: int, declared: str) -> Mapping:
    ps = numeric_precision_scale(typmod)
    if ps is None:
        return Mapping(pa.string(), "{}::text",
                       f"{declared} has no precision: read as exact text; declare numeric(p, s) to get a decimal")
    precision, scale = ps
    if precision > MAX_DECIMAL_PRECISION or scale < 0 or scale > precision:
        return Mapping(pa.string(), "{}::text",
                       f"{declared} does not fit decimal128(38, s): read as exact text")
    return Mapping(pa.decimal128(precision, scale))


def _scalar(typname: str, typtype: str, typmod: int, declared: str) -> Mapping | None:
    """The mapping of a non-array type, or None when it is unsupported."""
    if typname in NATIVE:
        return Mapping(NATIVE[typname])
    if typname == "numeric":
        return _numeric(typmod, declared)
    if typname == "money":
        # money is a 64-bit count of cents (for the usual lc_monetary): exact as numeric(19, 2).
        return Mapping(pa.decimal128(19, 2), "{}::numeric(19,2)")
    if typname == "oid":
        return Mapping(pa.int64(), "{}::int8")
    if typname in AS_TEXT or typtype == "e":
        return Mapping(pa.string(), "{}::text")
    return None


def map_type(t: PgType, declared: str) -> Mapping:
    """The Arrow type and select expression for a column declared as ``declared``."""
    if t.elem_typname is not None:
        if t.ndims > 1:
            return Mapping(pa.string(), "{}::text")
        elem = _scalar(t.elem_typname, t.elem_typtype or "b", t.typmod, declared)
        if elem is None:
            return Mapping(pa.string(), "{}::text", f"unsupported type {declared}: read as text")
        if elem.select == "{}::text":
            return Mapping(pa.list_(pa.string()), "{}::text[]")
        if elem.select != "{}":
            return Mapping(pa.string(), "{}::text", f"unsupported type {declared}: read as text")
        return Mapping(pa.list_(elem.arrow_type))
    mapped = _scalar(t.typname, t.typtype, t.typmod, declared)
    if mapped is None:
        return Mapping(pa.string(), "{}::text", f"unsupported type {declared}: read as text")
    return mapped
