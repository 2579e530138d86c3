"""One schema for a stream of many files: each file's types, widened to one type per column.

Rules (documented in docs/connectors/s3.md, "Schema"), applied to each pair of types a column has:

- the same type stays; a column that is all null in a file takes the other file's type;
- integers widen to the wider integer (signed and unsigned mixed: int64), integers and floats to float64;
- decimals widen to hold both (precision capped at 38), an integer and a decimal to a decimal;
- a date and a timestamp become a timestamp; timestamps take the finer unit, and UTC when their zones differ;
- structs merge their fields by name, lists merge their item types;
- anything else (text and number, boolean and number, nested and flat) becomes text.

A column missing from a file is null in that file's rows; columns keep the order they are first seen.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

_UNITS = ["s", "ms", "us", "ns"]


def _int_union(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    if pa.types.is_signed_integer(a) == pa.types.is_signed_integer(b):
        return a if a.bit_width >= b.bit_width else b
    signed, unsigned = (a, b) if pa.types.is_signed_integer(a) else (b, a)
    return signed if signed.bit_width > unsigned.bit_width else pa.int64()


def _decimal_union(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    scale = max(a.scale, b.scale)
    digits = max(a.precision - a.scale, b.precision - b.scale)
    return pa.decimal128(min(38, digits + scale), scale)


def _numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def widen(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The narrowest type both ``a`` and ``b`` values fit (by the module's rules)."""
    if a.equals(b):
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_null(b):
        return a
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        return _int_union(a, b)
    if _numeric(a) and _numeric(b):
        if pa.types.is_floating(a) or pa.types.is_floating(b):
            return pa.float64()
        da = a if pa.types.is_decimal(a) else pa.decimal128(19, 0)
        db = b if pa.types.is_decimal(b) else pa.decimal128(19, 0)
        return _decimal_union(da, db)
    if pa.types.is_temporal(a) and pa.types.is_temporal(b):
        if pa.types.is_date(a) and pa.types.is_date(b):
            return pa.date32()
        if (pa.types.is_timestamp(a) or pa.types.is_date(a)) and (pa.types.is_timestamp(b) or pa.types.is_date(b)):
            ta = a if pa.types.is_timestamp(a) else pa.timestamp("s")
            tb = b if pa.types.is_timestamp(b) else pa.timestamp("s")
            unit = max(ta.unit, tb.unit, key=_UNITS.index)
            return pa.timestamp(unit, tz=ta.tz if ta.tz == tb.tz else "UTC")
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        return pa.struct(merge([pa.schema(list(a)), pa.schema(list(b))]))
    if pa.types.is_list(a) and pa.types.is_list(b):
        return pa.list_(widen(a.value_type, b.value_type))
    return pa.string()


def merge(schemas: Iterable[pa.Schema]) -> pa.Schema:
    """One schema for files of ``schemas``: columns in first-seen order, types widened, all nullable."""
    types: dict[str, pa.DataType] = {}
    for schema in schemas:
        for field in schema:
            seen = types.get(field.name)
            types[field.name] = field.type if seen is None else widen(seen, field.type)
    return pa.schema([pa.field(name, _settled(t)) for name, t in types.items()])


def _settled(t: pa.DataType) -> pa.DataType:
    """Types a table can store: a column null in every sample is text; dictionaries decoded,
    large variants plain (what a later file brings must still widen into them)."""
    if pa.types.is_null(t):
        return pa.string()
    if pa.types.is_dictionary(t):
        return _settled(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return pa.list_(_settled(t.value_type))
    if pa.types.is_list(t):
        return pa.list_(_settled(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _settled(f.type)) for f in t])
    return t


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> tuple[pa.RecordBatch, list[str]]:
    """``batch`` with exactly ``schema``'s columns: missing ones null, extra ones dropped (returned by
    name, for a warning), the rest cast. Raises pyarrow's error when a value does not fit its type."""
    extra = [n for n in batch.schema.names if schema.get_field_index(n) < 0]
    columns = []
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            columns.append(pa.nulls(batch.num_rows, field.type))
            continue
        column = batch.column(index)
        if not column.type.equals(field.type):
            if pa.types.is_dictionary(column.type):
                column = column.dictionary_decode()
            column = pc.cast(column, field.type) if pa.types.is_string(field.type) else column.cast(field.type)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema), extra
