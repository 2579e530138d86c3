"""MySQL and MariaDB types → Arrow types (the table in docs/connectors/mysql.md)."""

from __future__ import annotations

import re

import pyarrow as pa

from tidemark.connectors.sql.tables import SqlColumn

MAX_DECIMAL_PRECISION = 38
MAX_INT64_BITS = 64  # a bit(n) with fewer bits fits int64

TEXT = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json",
                  "uuid", "inet4", "inet6"})
BINARY = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
GEOMETRY = frozenset({"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                      "multipolygon", "geometrycollection", "geomcollection"})
_SIGNED = {"tinyint": pa.int8(), "smallint": pa.int16(), "mediumint": pa.int32(), "int": pa.int32(),
           "integer": pa.int32(), "bigint": pa.int64()}
# Unsigned values need the next wider type; an unsigned bigint only fits decimal(20, 0).
_UNSIGNED = {"tinyint": pa.int16(), "smallint": pa.int32(), "mediumint": pa.int32(), "int": pa.int64(),
             "integer": pa.int64(), "bigint": pa.decimal128(20, 0)}
_BIT = re.compile(r"^bit\((\d+)\)")


def map_type(data_type: str, column_type: str, precision: int | None, scale: int | None,
             ) -> tuple[pa.DataType, str, str | None]:
    """``(arrow type, select expression, warning)`` for a column of ``information_schema.COLUMNS``."""
    dt, ct = data_type.lower(), column_type.lower()
    if dt == "tinyint" and ct.startswith("tinyint(1)") and "unsigned" not in ct:
        return pa.bool_(), "{}", None  # BOOLEAN is tinyint(1): read as a boolean (non-zero is true)
    if dt in _SIGNED:
        return (_UNSIGNED if "unsigned" in ct else _SIGNED)[dt], "{}", None
    if dt in ("decimal", "numeric", "dec", "fixed"):
        p, s = precision or 10, scale or 0
        if p > MAX_DECIMAL_PRECISION:
            return pa.string(), "{}", f"{column_type} does not fit decimal128(38, s): read as exact text"
        return pa.decimal128(p, s), "{}", None
    if dt == "float":
        # The text protocol prints a FLOAT with six significant digits (4938.27099609375 arrives
        # as 4938.27); as a DOUBLE it prints every digit of the same value, which is exact in
        # float32. `* 1e0` rather than CAST(... AS DOUBLE), which MySQL < 8.0.17 lacks.
        return pa.float32(), "{} * 1e0", None
    if dt in ("double", "real", "double precision"):
        return pa.float64(), "{}", None
    if dt == "bit":
        width = int(m.group(1)) if (m := _BIT.match(ct)) else 1
        if width == 1:
            return pa.bool_(), "{}", None
        # bit(64) holds up to 2^64 - 1, past int64: like bigint unsigned, only decimal(20, 0) holds it.
        return (pa.int64() if width < MAX_INT64_BITS else pa.decimal128(20, 0)), "{}", None
    if dt == "year":
        return pa.int16(), "{}", None
    if dt in TEXT:
        return pa.string(), "{}", None
    if dt in BINARY:
        return pa.binary(), "{}", None
    if dt == "date":
        return pa.date32(), "{}", None
    if dt == "datetime":
        return pa.timestamp("us"), "{}", None
    if dt == "timestamp":
        return pa.timestamp("us", tz="UTC"), "{}", None  # stored in UTC; the session speaks UTC
    if dt == "time":
        return pa.time64("us"), "{}", None
    if dt in GEOMETRY:
        return pa.string(), "ST_AsText({})", None
    return pa.string(), "CAST({} AS CHAR)", f"unsupported type {column_type}: read as text"


def bit_width(column: SqlColumn) -> int | None:
    m = _BIT.match(column.source_type.lower())
    return int(m.group(1)) if m else None
