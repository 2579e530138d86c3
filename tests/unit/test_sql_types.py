"""Each database's type table, as documented in docs/connectors/<db>.md."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tidemark.connectors.sql.arrow import rows_to_batch, shown_value
from tidemark.connectors.sql.mssql.types import MssqlType, cast_target
from tidemark.connectors.sql.mssql.types import map_type as mssql_type
from tidemark.connectors.sql.mysql.types import map_type as mysql_type
from tidemark.connectors.sql.postgres.types import PgType, numeric_precision_scale
from tidemark.connectors.sql.postgres.types import map_type as pg_type
from tidemark.connectors.sql.redshift.source import map_type as redshift_type
from tidemark.errors import FailureKind, SourceError

pytestmark = pytest.mark.unit


def pg(typname: str, declared: str = "", typmod: int = -1, typtype: str = "b", elem: str | None = None,
       ndims: int = 0) -> tuple[pa.DataType, str, str | None]:
    m = pg_type(PgType(typname, typtype, typmod, elem, "b" if elem else None, ndims), declared or typname)
    return m.arrow_type, m.select, m.warning


def numeric_typmod(p: int, s: int) -> int:
    return ((p << 16) | s) + 4


@pytest.mark.parametrize(("args", "expected"), [
    (("int2",), (pa.int16(), "{}")), (("int4",), (pa.int32(), "{}")), (("int8",), (pa.int64(), "{}")),
    (("float4",), (pa.float32(), "{}")), (("float8",), (pa.float64(), "{}")), (("bool",), (pa.bool_(), "{}")),
    (("varchar",), (pa.string(), "{}")), (("bpchar",), (pa.string(), "{}")), (("bytea",), (pa.binary(), "{}")),
    (("uuid",), (pa.string(), "{}::text")), (("jsonb",), (pa.string(), "{}::text")),
    (("json",), (pa.string(), "{}::text")), (("date",), (pa.date32(), "{}")),
    (("time",), (pa.time64("us"), "{}")), (("timetz",), (pa.string(), "{}::text")),
    (("timestamp",), (pa.timestamp("us"), "{}")), (("timestamptz",), (pa.timestamp("us", tz="UTC"), "{}")),
    (("interval",), (pa.string(), "{}::text")), (("money",), (pa.decimal128(19, 2), "{}::numeric(19,2)")),
    (("mood", "mood", -1, "e"), (pa.string(), "{}::text")),
    (("_int4", "integer[]", -1, "b", "int4", 1), (pa.list_(pa.int32()), "{}")),
    (("_uuid", "uuid[]", -1, "b", "uuid", 1), (pa.list_(pa.string()), "{}::text[]")),
    (("_int4", "integer[][]", -1, "b", "int4", 2), (pa.string(), "{}::text")),
])
def test_postgres_types(args: tuple[object, ...], expected: tuple[pa.DataType, str]) -> None:
    arrow, select, warning = pg(*args)  # type: ignore[arg-type]
    assert (arrow, select) == expected
    assert warning is None


def test_postgres_numeric_keeps_precision_and_never_becomes_float() -> None:
    assert numeric_precision_scale(numeric_typmod(12, 3)) == (12, 3)
    assert pg("numeric", "numeric(12,3)", numeric_typmod(12, 3))[:2] == (pa.decimal128(12, 3), "{}")
    assert pg("numeric", "numeric(38,0)", numeric_typmod(38, 0))[0] == pa.decimal128(38, 0)
    for typmod, declared in ((-1, "numeric"), (numeric_typmod(60, 2), "numeric(60,2)")):
        arrow, select, warning = pg("numeric", declared, typmod)
        assert (arrow, select) == (pa.string(), "{}::text")
        assert warning is not None
        assert "exact text" in warning


def test_postgres_unknown_types_become_text_with_a_warning() -> None:
    arrow, select, warning = pg("tsvector")
    assert (arrow, select) == (pa.string(), "{}::text")
    assert warning == "unsupported type tsvector: read as text"


@pytest.mark.parametrize(("data_type", "column_type", "precision", "scale", "expected"), [
    ("tinyint", "tinyint(1)", None, None, pa.bool_()),
    ("tinyint", "tinyint(4)", None, None, pa.int8()),
    ("tinyint", "tinyint(3) unsigned", None, None, pa.int16()),
    ("int", "int(10) unsigned", None, None, pa.int64()),
    ("bigint", "bigint(20) unsigned", None, None, pa.decimal128(20, 0)),
    ("decimal", "decimal(12,2)", 12, 2, pa.decimal128(12, 2)),
    ("decimal", "decimal(65,5)", 65, 5, pa.string()),
    ("float", "float", None, None, pa.float32()),
    ("float", "float unsigned", None, None, pa.float32()),
    ("float", "float(10,3)", 10, 3, pa.float32()),
    ("double", "double", None, None, pa.float64()),
    ("bit", "bit(1)", None, None, pa.bool_()),
    ("bit", "bit(12)", None, None, pa.int64()),
    ("bit", "bit(63)", None, None, pa.int64()),
    ("bit", "bit(64)", None, None, pa.decimal128(20, 0)),
    ("year", "year(4)", None, None, pa.int16()),
    ("enum", "enum('a','b')", None, None, pa.string()),
    ("json", "json", None, None, pa.string()),
    ("longblob", "longblob", None, None, pa.binary()),
    ("datetime", "datetime(6)", None, None, pa.timestamp("us")),
    ("timestamp", "timestamp(6)", None, None, pa.timestamp("us", tz="UTC")),
    ("time", "time(6)", None, None, pa.time64("us")),
])
def test_mysql_types(data_type: str, column_type: str, precision: int | None, scale: int | None,
                     expected: pa.DataType) -> None:
    assert mysql_type(data_type, column_type, precision, scale)[0] == expected


@pytest.mark.parametrize("column_type", ["float", "float unsigned", "float(10,3)"])
def test_mysql_float_is_selected_as_a_double_so_every_digit_arrives(column_type: str) -> None:
    # The text protocol prints a FLOAT with six significant digits; the same value as a DOUBLE in full.
    assert mysql_type("float", column_type, None, None) == (pa.float32(), "{} * 1e0", None)


def test_mysql_geometry_and_unknown_types() -> None:
    assert mysql_type("point", "point", None, None) == (pa.string(), "ST_AsText({})", None)
    arrow, select, warning = mysql_type("vector", "vector(3)", None, None)
    assert (arrow, select) == (pa.string(), "CAST({} AS CHAR)")
    assert warning == "unsupported type vector(3): read as text"


@pytest.mark.parametrize(("t", "expected", "declared"), [
    (MssqlType("bit"), pa.bool_(), "bit"),
    (MssqlType("tinyint"), pa.int16(), "tinyint"),
    (MssqlType("bigint"), pa.int64(), "bigint"),
    (MssqlType("decimal", precision=18, scale=4), pa.decimal128(18, 4), "decimal(18,4)"),
    (MssqlType("money"), pa.decimal128(19, 4), "money"),
    (MssqlType("float", precision=53), pa.float64(), "float"),
    (MssqlType("nvarchar", max_length=100), pa.string(), "nvarchar(50)"),
    (MssqlType("nvarchar", max_length=-1), pa.string(), "nvarchar(max)"),
    (MssqlType("varbinary", max_length=16), pa.binary(), "varbinary(16)"),
    (MssqlType("uniqueidentifier"), pa.string(), "uniqueidentifier"),
    (MssqlType("datetime2", scale=7), pa.timestamp("us"), "datetime2(7)"),
    (MssqlType("datetimeoffset", scale=7), pa.timestamp("us", tz="UTC"), "datetimeoffset(7)"),
    (MssqlType("time", scale=7), pa.time64("us"), "time(7)"),
    (MssqlType("geography"), pa.string(), "geography"),
])
def test_mssql_types(t: MssqlType, expected: pa.DataType, declared: str) -> None:
    arrow, _, warning = mssql_type(t)
    assert arrow == expected
    assert warning is None
    assert t.declared() == declared


def test_mssql_reads_offsets_as_utc_and_compares_datetimes_at_full_precision() -> None:
    assert mssql_type(MssqlType("datetimeoffset", scale=7))[1] == "CONVERT(datetime2(7), SWITCHOFFSET({}, '+00:00'))"
    assert cast_target("datetime", pa.timestamp("us")) == "datetime2(7)"
    assert cast_target("datetimeoffset(7)", pa.timestamp("us", tz="UTC")) == "datetimeoffset(7)"
    assert cast_target("decimal(12,2)", pa.decimal128(12, 2)) == "decimal(12,2)"
    assert mssql_type(MssqlType("sql_variant"))[2] == "unsupported type sql_variant: read as text"


@pytest.mark.parametrize(("data_type", "expected", "select"), [
    ("integer", pa.int32(), "{}"), ("numeric", pa.decimal128(18, 0), "{}"),
    ("double precision", pa.float64(), "{}"), ("character varying", pa.string(), "{}"),
    ("timestamp with time zone", pa.timestamp("us", tz="UTC"), "{}"),
    ("super", pa.string(), "JSON_SERIALIZE({})"), ("varbyte", pa.binary(), "TO_HEX({})"),
    ("geometry", pa.string(), "ST_AsText({})"), ("time with time zone", pa.string(), "CAST({} AS VARCHAR)"),
])
def test_redshift_types(data_type: str, expected: pa.DataType, select: str) -> None:
    assert redshift_type(data_type, None, None)[:2] == (expected, select)


def test_redshift_numeric_precision_and_unknown_types() -> None:
    assert redshift_type("numeric", 38, 6)[0] == pa.decimal128(38, 6)
    assert redshift_type("hllsketch", None, None) == (
        pa.string(), "CAST({} AS VARCHAR)", "unsupported type hllsketch: read as text")


# --------------------------------------------------------------------------- a value that does not fit


def test_rows_to_batch_names_column_type_row_and_value() -> None:
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("n", pa.int32())])
    rows = [(1, 5), (2, None), (3, 3_000_000_000), (4, 7)]
    with pytest.raises(SourceError) as caught:
        rows_to_batch(rows, schema, [None, None], "s.t", first_row=100)
    assert caught.value.message == (
        "stream 's.t': column 'n' (int32) cannot hold the value '3000000000' "
        "at row 103 (counting from 1 in read order)")
    assert caught.value.detail == {"column": "n", "type": "int32", "row": 103}
    assert caught.value.kind is FailureKind.TERMINAL


def test_rows_to_batch_without_an_offset_says_the_row_is_within_a_batch() -> None:
    schema = pa.schema([pa.field("d", pa.date32())])
    with pytest.raises(SourceError) as caught:
        rows_to_batch([(None,), ("x" * 100,)], schema, [None], "s.t")
    assert caught.value.message == (
        f"stream 's.t': column 'd' (date32[day]) cannot hold the value '{'x' * 40}…' at row 2 of a batch")


def test_shown_values_are_short_text() -> None:
    assert shown_value(b"\xffab") == repr("\ufffdab")
    assert shown_value(12) == "'12'"
    assert len(shown_value("y" * 1000)) == 40 + 3
