"""The MySQL / MariaDB source against the real MariaDB: contract, every mapped type, modes, errors."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import struct
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pymysql  # type: ignore[import-untyped]
import pytest

from tidemark.connectors import get_connector
from tidemark.connectors.base import KeyRange, StreamState
from tidemark.connectors.sql.mysql import MySQLConfig, MySQLSource
from tidemark.errors import FailureKind, SourceError
from tidemark.events import DestinationSpec, StreamSpec, SyncMode
from tidemark.lakehouse import Lakehouse
from tidemark_ingest.worker.load import Progress, load_stream
from tidemark_testing.connector_contract import CONTRACT_ROWS, ContractTable, SourceContract, rows_of
from tidemark_testing.ports import free_port

pytestmark = pytest.mark.integration

HOST = os.environ.get("TIDEMARK_TEST_MYSQL_HOST", "127.0.0.1")
PORT = int(os.environ.get("TIDEMARK_TEST_MYSQL_PORT", "3306"))
ADMIN = {"host": HOST, "port": PORT, "user": "root", "password": os.environ.get("TIDEMARK_TEST_MYSQL_PASSWORD", "")}
PASSWORD = "s3cr3t-Pa55word"

TABLES_SQL = [
    "CREATE TABLE contract (id INT PRIMARY KEY, name VARCHAR(100), amount DECIMAL(10, 2), "
    "updated_at DATETIME(6) NOT NULL)",
    """CREATE TABLE `Order Items` (
        id BIGINT PRIMARY KEY, `select` SMALLINT, `MixedCase` INT, tiny TINYINT, utiny TINYINT UNSIGNED,
        flag BOOLEAN, med MEDIUMINT, uint INT UNSIGNED, big BIGINT, ubig BIGINT UNSIGNED,
        num DECIMAL(38, 10), huge DECIMAL(65, 5), fl FLOAT, dbl DOUBLE, b1 BIT(1), b10 BIT(10), yr YEAR,
        ch CHAR(4), vc VARCHAR(50), txt TEXT, ltxt LONGTEXT, feeling ENUM('happy', 'sad'), tags SET('a', 'b', 'c'),
        js JSON, bn BINARY(4), vb VARBINARY(10), bl BLOB, d DATE, dt DATETIME(6), ts TIMESTAMP(6) NULL,
        t TIME(6), uid UUID, spot POINT, ufl FLOAT UNSIGNED, fl2 FLOAT(10, 3), b64 BIT(64),
        raw ENUM('ok', X'FF') CHARACTER SET binary
    ) CHARACTER SET utf8mb4""",
    "CREATE TABLE composite (region VARCHAR(10) NOT NULL, n INT NOT NULL, label TEXT, PRIMARY KEY (region, n))",
    "CREATE TABLE no_key (label TEXT, seen_at DATETIME)",
    "CREATE VIEW happy_items AS SELECT id, txt FROM `Order Items` WHERE feeling = 'happy'",
    "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(40), changed_at DATETIME NOT NULL)",
    "CREATE TABLE floats (id INT PRIMARY KEY, f FLOAT, d DOUBLE)",
    # A dotted name and the name its last part would be if the dot split it.
    "CREATE TABLE `v1.2 data` (id INT PRIMARY KEY, label TEXT)",
    "CREATE TABLE `2 data` (id INT PRIMARY KEY, label TEXT)",
]

TYPED_COLUMNS = ["id", "select", "MixedCase", "tiny", "utiny", "flag", "med", "uint", "big", "ubig", "num", "huge",
                 "fl", "dbl", "b1", "b10", "yr", "ch", "vc", "txt", "ltxt", "feeling", "tags", "js", "bn", "vb", "bl",
                 "d", "dt", "ts", "t", "uid", "spot", "ufl", "fl2", "b64", "raw"]
U = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"


def f32(value: float) -> float:
    """``value`` rounded to the nearest float32, as a FLOAT column stores it."""
    return float(pa.scalar(value, pa.float32()).as_py())


def bits(value: int) -> tuple[str, Decimal]:
    """A BIT(64) literal and the decimal(20, 0) Arrow must hold."""
    return f"b'{value:b}'", Decimal(value)

# (SQL expression per column, the value Arrow must hold)
TYPED_ROWS: list[dict[str, tuple[str, Any]]] = [
    {"select": ("7", 7), "MixedCase": ("42", 42), "tiny": ("-5", -5), "utiny": ("200", 200), "flag": ("TRUE", True),
     "med": ("-8388608", -8388608), "uint": ("4294967295", 4294967295), "big": ("9000000000", 9_000_000_000),
     "ubig": ("18446744073709551615", Decimal("18446744073709551615")),
     "num": ("12345.6789012345", Decimal("12345.6789012345")), "huge": ("1.5", "1.50000"),
     # Every bit of the float32 mantissa: the text protocol would send 4938.27 (4938.27001953125).
     "fl": ("4938.27099609375", 4938.27099609375), "ufl": ("16777215", 16777215.0),
     "fl2": ("1234567.125", 1234567.125), "b64": bits(2**64 - 1), "raw": ("'ok'", "ok"),
     "dbl": ("2.25", 2.25), "b1": ("b'1'", True), "b10": ("b'1010'", 10), "yr": ("2024", 2024),
     "ch": ("'ab'", "ab"), "vc": ("'O''Brien'", "O'Brien"), "txt": ("'héllo wörld 🌊 東京'", "héllo wörld 🌊 東京"),
     "ltxt": ("REPEAT('x', 1000)", "x" * 1000), "feeling": ("'happy'", "happy"), "tags": ("'a,c'", "a,c"),
     "js": ("'{\"b\": 1, \"a\": [true, null]}'", {"b": 1, "a": [True, None]}),
     "bn": ("X'DEADBEEF'", b"\xde\xad\xbe\xef"), "vb": ("X'00FF'", b"\x00\xff"), "bl": ("X'0102'", b"\x01\x02"),
     "d": ("'2024-02-29'", date(2024, 2, 29)), "dt": ("'2024-01-01 12:00:00.123456'",
                                                      datetime(2024, 1, 1, 12, 0, 0, 123456)),
     "ts": ("'2024-01-01 12:00:00.5'", datetime(2024, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)),
     "t": ("'13:14:15.123456'", time(13, 14, 15, 123456)), "uid": (f"'{U}'", U),
     "spot": ("POINT(1, 2)", "POINT(1 2)")},
    {},  # every column NULL
    {"select": ("-32768", -32768), "MixedCase": ("2147483647", 2147483647), "tiny": ("127", 127),
     "utiny": ("0", 0), "flag": ("FALSE", False), "uint": ("0", 0), "big": ("-9223372036854775808", -(2**63)),
     "ubig": ("0", Decimal(0)), "num": ("-9999999999999999999999999999.9999999999",
                                        Decimal("-9999999999999999999999999999.9999999999")),
     "huge": ("123456789012345678901234567890123456789012345678901234567890",
              "123456789012345678901234567890123456789012345678901234567890.00000"),
     "fl": ("-3.4e38", float(pa.scalar(-3.4e38, pa.float32()).as_py())), "dbl": ("-1.7976931348623157e308",
                                                                               -1.7976931348623157e308),
     "b1": ("b'0'", False), "b10": ("b'1111111111'", 1023), "yr": ("1901", 1901), "ch": ("''", ""),
     "vc": ("''", ""), "txt": ("''", ""), "tags": ("''", ""), "js": ("'[]'", []), "vb": ("X''", b""),
     "d": ("'1000-01-01'", date(1000, 1, 1)), "dt": ("'9999-12-31 23:59:59.999999'",
                                                     datetime(9999, 12, 31, 23, 59, 59, 999999)),
     "ts": ("'1970-01-01 00:00:01'", datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)),
     "t": ("'00:00:00'", time(0, 0)), "uid": ("'00000000-0000-0000-0000-000000000000'",
                                              "00000000-0000-0000-0000-000000000000"),
     "ufl": ("3.4028234663852886e38", f32(3.4028234663852886e38)), "fl2": ("-0.001", f32(-0.001)),
     "b64": bits(0), "raw": ("X'FF'", "\ufffd")},
    # Values Arrow cannot hold read as NULL (and counted as warnings): zero dates, TIME beyond a day
    # or negative. Bytes that are not UTF-8 in a text column are replaced (and counted).
    {"d": ("'0000-00-00'", None), "dt": ("'0000-00-00 00:00:00'", None), "t": ("'838:59:59'", None),
     "fl": ("1.401298464324817e-45", f32(1.401298464324817e-45)), "b64": bits(2**63), "raw": ("X'FF'", "\ufffd")},
    {"t": ("'-01:00:00'", None), "d": ("'2024-00-10'", None),
     "fl": ("1.1754943508222875e-38", f32(1.1754943508222875e-38)), "b64": bits(2**63 - 1)},
    {"t": ("'24:00:00'", None), "ts": ("'0000-00-00 00:00:00'", None), "fl2": ("9999999.999", f32(9999999.999))},
]

# What reading the typed table must report, per (kind, column): how many values each rule changed.
TYPED_WARNINGS = {
    ("value_as_null", "d"): 2, ("value_as_null", "dt"): 1, ("value_as_null", "ts"): 1, ("value_as_null", "t"): 3,
    ("text_replaced", "raw"): 2, ("type_as_text", "huge"): 0,
}

EXPECTED_TYPES = {
    "id": pa.int64(), "select": pa.int16(), "MixedCase": pa.int32(), "tiny": pa.int8(), "utiny": pa.int16(),
    "flag": pa.bool_(), "med": pa.int32(), "uint": pa.int64(), "big": pa.int64(), "ubig": pa.decimal128(20, 0),
    "num": pa.decimal128(38, 10), "huge": pa.string(), "fl": pa.float32(), "dbl": pa.float64(), "b1": pa.bool_(),
    "b10": pa.int64(), "yr": pa.int16(), "ch": pa.string(), "vc": pa.string(), "txt": pa.string(),
    "ltxt": pa.string(), "feeling": pa.string(), "tags": pa.string(), "js": pa.string(), "bn": pa.binary(),
    "vb": pa.binary(), "bl": pa.binary(), "d": pa.date32(), "dt": pa.timestamp("us"),
    "ts": pa.timestamp("us", tz="UTC"), "t": pa.time64("us"), "uid": pa.string(), "spot": pa.string(),
    "ufl": pa.float32(), "fl2": pa.float32(), "b64": pa.decimal128(20, 0), "raw": pa.string(),
}


def _random_floats(count: int) -> list[tuple[int, float, float]]:
    """``(id, float32, float64)`` from random bit patterns: every exponent, every mantissa bit."""
    rng = random.Random(6)
    out: list[tuple[int, float, float]] = []
    while len(out) < count:
        single = struct.unpack("<f", struct.pack("<I", rng.getrandbits(32)))[0]
        double = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if math.isfinite(single) and math.isfinite(double):
            out.append((len(out) + 1, single, double))
    return out


FLOATS = _random_floats(1000)


def admin(database: str | None = None) -> Any:
    return pymysql.connect(**ADMIN, database=database, autocommit=True, init_command="SET time_zone = '+00:00'")


@pytest.fixture(scope="module")
def mysql_db() -> Iterator[str]:
    """A fresh database ``tidemark_src_*`` holding the test tables; dropped afterwards."""
    name = f"tidemark_src_{uuid.uuid4().hex[:12]}"
    try:
        conn = admin()
    except pymysql.MySQLError as exc:
        pytest.fail(f"MariaDB is needed at {HOST}:{PORT} as root: {exc}")
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        with admin(name) as conn, conn.cursor() as cur:
            for statement in TABLES_SQL:
                cur.execute(statement)
            cur.execute("SET SESSION sql_mode = ''")  # lets the zero dates of the last rows in
            for i, row in enumerate(TYPED_ROWS, start=1):
                names = ["id", *row]
                cur.execute(f"INSERT INTO `Order Items` ({', '.join(f'`{n}`' for n in names)}) "
                            f"VALUES ({', '.join([str(i), *(expr for expr, _ in row.values())])})")
            cur.executemany("INSERT INTO contract VALUES (%s, %s, %s, %s)",
                            [(r["id"], r["name"], r["amount"], r["updated_at"]) for r in CONTRACT_ROWS])
            cur.executemany("INSERT INTO composite VALUES (%s, %s, %s)",
                            [("eu", 1, "a"), ("eu", 2, "b"), ("us", 1, None)])
            cur.executemany("INSERT INTO no_key VALUES (%s, %s)", [("x", datetime(2024, 1, 1)), ("x", None)])
            cur.execute("INSERT INTO big SELECT seq, MD5(seq), '2024-01-01' + INTERVAL seq MINUTE "
                        "FROM seq_1_to_5000")
            cur.executemany("INSERT INTO floats VALUES (%s, %s, %s)", FLOATS)
            cur.executemany("INSERT INTO `v1.2 data` VALUES (%s, %s)", [(1, "dotted one"), (2, "dotted two")])
            cur.execute("INSERT INTO `2 data` VALUES (1, 'plain')")
        yield name
    finally:
        with admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def source(database: str, **overrides: Any) -> MySQLSource:
    fields: dict[str, Any] = {"host": HOST, "port": PORT, "user": ADMIN["user"], "password": ADMIN["password"],
                              "database": database} | overrides
    return MySQLSource(MySQLConfig(**fields))


class TestMySQLContract(SourceContract):
    @pytest.fixture
    def contract_table(self, mysql_db: str) -> ContractTable:
        return ContractTable(source=source(mysql_db), stream=f"{mysql_db}.contract")


def test_registry_knows_mysql_and_mariadb() -> None:
    assert get_connector("mysql") is MySQLSource
    assert get_connector("mariadb") is MySQLSource


def test_discover_maps_every_type_and_quotes_names(mysql_db: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tidemark.connectors"):
        catalog = source(mysql_db).discover()
    info = catalog.stream(f"{mysql_db}.Order Items")
    assert info is not None
    assert {c.name: c.type for c in info.columns} == {k: str(v) for k, v in EXPECTED_TYPES.items()}
    assert info.primary_key == ["id"]
    assert {"id", "num", "d", "dt", "ts"} <= set(info.cursor_candidates)
    assert not {"txt", "flag", "dbl"} & set(info.cursor_candidates)
    warned = {getattr(r, "fields", {}).get("column") for r in caplog.records}
    assert "huge" in warned
    assert catalog.stream(f"{mysql_db}.composite").primary_key == ["region", "n"]  # type: ignore[union-attr]
    assert catalog.stream(f"{mysql_db}.no_key").primary_key == []  # type: ignore[union-attr]
    assert catalog.stream(f"{mysql_db}.happy_items") is not None


def _same(actual: Any, expected: Any, column: str) -> bool:
    if column == "js" and actual is not None:
        return bool(json.loads(actual) == expected)
    return bool(actual == expected)


def test_every_type_round_trips_value_by_value(mysql_db: str) -> None:
    src = source(mysql_db)
    spec = StreamSpec(name=f"{mysql_db}.Order Items")
    schema = src.arrow_schema(spec)
    assert schema.names == TYPED_COLUMNS
    batches = list(src.read(spec, None))
    assert all(b.schema.equals(schema) for b in batches)
    rows = sorted(pa.Table.from_batches(batches, schema).to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(1, len(TYPED_ROWS) + 1))
    for row, inserted in zip(rows, TYPED_ROWS, strict=True):
        for column in TYPED_COLUMNS[1:]:
            want = inserted[column][1] if column in inserted else None
            assert _same(row[column], want, column), f"row {row['id']} {column}: {row[column]!r} != {want!r}"


def test_composite_and_keyless_tables_read_completely(mysql_db: str) -> None:
    src = source(mysql_db)
    composite = rows_of(src.read(StreamSpec(name=f"{mysql_db}.composite"), None))
    assert sorted((r["region"], r["n"], r["label"]) for r in composite) == [
        ("eu", 1, "a"), ("eu", 2, "b"), ("us", 1, None)]
    keyless = rows_of(src.read(StreamSpec(name=f"{mysql_db}.no_key"), None))
    assert sorted(keyless, key=lambda r: r["seen_at"] is None) == [
        {"label": "x", "seen_at": datetime(2024, 1, 1)}, {"label": "x", "seen_at": None}]


def test_batches_respect_batch_size(mysql_db: str) -> None:
    batches = list(source(mysql_db, batch_size=1000).read(StreamSpec(name=f"{mysql_db}.big"), None))
    assert sum(b.num_rows for b in batches) == 5000
    assert max(b.num_rows for b in batches) <= 1000


def test_partitions_cover_every_row_once(mysql_db: str) -> None:
    src = source(mysql_db)
    spec = StreamSpec(name=f"{mysql_db}.big", sync_mode=SyncMode.INCREMENTAL, cursor_field="changed_at")
    parts = src.partitions(spec, 4)
    assert len(parts) == 4
    seen = [r["id"] for p in parts for r in rows_of(src.read_partition(spec, None, p))]
    assert sorted(seen) == list(range(1, 5001))
    state = StreamState(cursor_field="changed_at", cursor_value=datetime(2024, 1, 4, 1, 20))  # row 4400
    past = [r["id"] for p in parts for r in rows_of(src.read_partition(spec, state, p))]
    assert sorted(past) == list(range(4400, 5001))


def test_databases_and_tables_limit_the_catalog(mysql_db: str) -> None:
    only = source(mysql_db, tables=[f"{mysql_db}.composite"])
    assert [s.name for s in only.discover().streams] == [f"{mysql_db}.composite"]


# --------------------------------------------------------------------------- check errors


def _check_error(src: MySQLSource) -> SourceError:
    with pytest.raises(SourceError) as caught:
        src.check()
    assert PASSWORD not in caught.value.message
    assert PASSWORD not in str(caught.value.detail)
    return caught.value


@pytest.fixture(scope="module")
def users(mysql_db: str) -> Iterator[dict[str, str]]:
    """A user with a password and no grants, and one that may INSERT but not SELECT."""
    suffix = uuid.uuid4().hex[:8]
    made = {"plain": f"tm_plain_{suffix}", "no_select": f"tm_nosel_{suffix}"}
    with admin() as conn, conn.cursor() as cur:
        for user in made.values():
            cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, PASSWORD))
        cur.execute(f"GRANT INSERT ON `{mysql_db}`.contract TO %s@'%%'", (made["no_select"],))
    try:
        yield made
    finally:
        with admin() as conn, conn.cursor() as cur:
            for user in made.values():
                cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))


def test_check_wrong_password(mysql_db: str, users: dict[str, str]) -> None:
    err = _check_error(source(mysql_db, user=users["plain"], password="wrong-" + PASSWORD))
    assert err.kind is FailureKind.CONFIG
    assert err.message == f"authentication failed for user '{users['plain']}': check the user name and password"


def test_check_missing_database(mysql_db: str) -> None:
    err = _check_error(source("tidemark_src_missing", password=PASSWORD if ADMIN["password"] else ""))
    assert err.kind is FailureKind.CONFIG
    assert err.message == f"database 'tidemark_src_missing' does not exist on {HOST}:{PORT}"


def test_check_user_without_privileges_on_the_database(mysql_db: str, users: dict[str, str]) -> None:
    err = _check_error(source(mysql_db, user=users["plain"], password=PASSWORD))
    assert err.kind is FailureKind.CONFIG
    assert f"user '{users['plain']}' has no privileges on database '{mysql_db}'" in err.message


def test_check_missing_select(mysql_db: str, users: dict[str, str]) -> None:
    err = _check_error(source(mysql_db, user=users["no_select"], password=PASSWORD,
                              tables=[f"{mysql_db}.contract"]))
    assert err.kind is FailureKind.CONFIG
    assert f"lacks SELECT on {mysql_db}.contract" in err.message
    with pytest.raises(SourceError) as caught:
        list(source(mysql_db, user=users["no_select"], password=PASSWORD).read(
            StreamSpec(name=f"{mysql_db}.contract"), None))
    assert caught.value.kind is FailureKind.CONFIG
    assert "SELECT command denied" in caught.value.message


def test_check_unknown_host(mysql_db: str) -> None:
    err = _check_error(source(mysql_db, host="no-such-host.invalid", password=PASSWORD, connect_timeout_seconds=2))
    assert err.kind is FailureKind.CONFIG
    assert "'no-such-host.invalid' could not be resolved" in err.message


def test_check_unreachable_port(mysql_db: str) -> None:
    err = _check_error(source(mysql_db, host="127.0.0.1", port=free_port(), password=PASSWORD))
    assert err.kind is FailureKind.TRANSIENT
    assert "nothing accepts connections at 127.0.0.1:" in err.message


def test_tls_required_but_not_offered(mysql_db: str) -> None:
    with admin() as conn, conn.cursor() as cur:
        cur.execute("SHOW VARIABLES LIKE 'have_ssl'")
        have_ssl = cur.fetchone()[1]
    src = source(mysql_db, tls_mode="require")
    if have_ssl == "YES":
        src.check()
        return
    err = _check_error(src)
    assert err.kind is FailureKind.CONFIG
    assert err.detail == {"field": "tls_mode"}


# --------------------------------------------------------------------------- values that must not be lost


def test_float_and_double_arrive_exactly(mysql_db: str) -> None:
    """A FLOAT holds 24 mantissa bits; the text protocol's six digits lost them for a third of these rows."""
    src = source(mysql_db)
    spec = StreamSpec(name=f"{mysql_db}.floats")
    assert src.arrow_schema(spec).field("f").type == pa.float32()
    rows = rows_of(src.read(spec, None))
    got = {r["id"]: (r["f"], r["d"]) for r in rows}
    assert got == {i: (f, d) for i, f, d in FLOATS}


def test_values_read_as_null_or_replaced_are_counted(mysql_db: str) -> None:
    src = source(mysql_db, batch_size=2)  # counts add up across batches
    spec = StreamSpec(name=f"{mysql_db}.Order Items")
    list(src.read(spec, None))
    assert {(w.kind, w.column): w.count for w in src.warnings.take(spec.name)} == TYPED_WARNINGS
    assert src.warnings.take(spec.name) == [], "taken once"


def test_typed_table_through_the_lakehouse_keeps_every_value_and_reports_warnings(
        lake: Lakehouse, mysql_db: str) -> None:
    """The worker's path: bit(64) as an Iceberg decimal, float32 exact, the NULLs by rule as warnings."""
    stream = f"{mysql_db}.Order Items"
    stats = load_stream(lake, source(mysql_db, batch_size=2), DestinationSpec(namespace="typed"),
                        StreamSpec(name=stream), "typed-run", Progress())
    assert stats.status == "succeeded", stats.error
    assert {(w.kind, w.column): w.count for w in stats.warnings} == TYPED_WARNINGS
    by_kind = {(w.kind, w.column): w.message for w in stats.warnings}
    assert "24:00:00" in by_kind[("value_as_null", "t")]
    assert "0000-00-00" in by_kind[("value_as_null", "d")]
    table = lake.catalog.load_table(stats.table).scan().to_arrow()
    rows = sorted(table.to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(1, len(TYPED_ROWS) + 1))
    for row, inserted in zip(rows, TYPED_ROWS, strict=True):
        for column in TYPED_COLUMNS[1:]:
            want = inserted[column][1] if column in inserted else None
            assert _same(row[column], want, column), f"row {row['id']} {column}: {row[column]!r} != {want!r}"


def test_a_dotted_name_and_its_last_part_load_into_their_own_tables(lake: Lakehouse, mysql_db: str) -> None:
    src = source(mysql_db)
    loaded: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for name in ("v1.2 data", "2 data"):
        stats = load_stream(lake, src, DestinationSpec(namespace="names"), StreamSpec(name=f"{mysql_db}.{name}"),
                            "names-run", Progress())
        assert stats.status == "succeeded", stats.error
        rows = lake.catalog.load_table(stats.table).scan().to_arrow().to_pylist()
        loaded[name] = (stats.table, sorted(rows, key=lambda r: r["id"]))
    assert re.fullmatch(rf"names\.{mysql_db}__v1_2_data_[0-9a-f]{{8}}", loaded["v1.2 data"][0])
    assert re.fullmatch(rf"names\.{mysql_db}__2_data_[0-9a-f]{{8}}", loaded["2 data"][0])
    assert loaded["v1.2 data"][1] == [{"id": 1, "label": "dotted one"}, {"id": 2, "label": "dotted two"}]
    assert loaded["2 data"][1] == [{"id": 1, "label": "plain"}]


def test_a_value_its_planned_type_cannot_hold_names_column_type_and_row(lake: Lakehouse, mysql_db: str) -> None:
    """A column widened between planning and reading (an ALTER while a run starts): the run's error
    says which column, which type, which row (counted across batches) and which value."""
    with admin(mysql_db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE drift (id INT PRIMARY KEY, n INT)")
        cur.executemany("INSERT INTO drift VALUES (%s, %s)", [(i, i * 10) for i in range(1, 6)])
    src = source(mysql_db, batch_size=2)
    spec = StreamSpec(name=f"{mysql_db}.drift")
    assert src.arrow_schema(spec).field("n").type == pa.int32()
    declared = src.table(spec.name).column("n").source_type  # type: ignore[union-attr]
    with admin(mysql_db) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE drift MODIFY n BIGINT")
        cur.execute("UPDATE drift SET n = 3000000000 WHERE id = 4")
    stats = load_stream(lake, src, DestinationSpec(namespace="drift"), spec, "drift-run", Progress())
    assert stats.status == "failed"
    assert stats.error is not None
    assert stats.error.message == (
        f"stream '{mysql_db}.drift': column 'n' ({declared}, read as int32) cannot hold the value '3000000000' "
        "at row 4 (counting from 1 in read order)")
    assert stats.error.kind == "terminal"


# --------------------------------------------------------------------------- the two readers


def test_reads_go_through_connectorx_unless_told_or_bound_by_text(mysql_db: str) -> None:
    """Plain-TCP connections read with connectorx; a plan bounded by text (a string key range) and a
    source with ``columnar=False`` read with PyMySQL."""
    src = source(mysql_db)
    spec = StreamSpec(name=f"{mysql_db}.composite", sync_mode=SyncMode.INCREMENTAL, cursor_field="n",
                      primary_key=["region", "n"])
    assert src._columnar_sql(src.plan(spec, StreamState(cursor_field="n", cursor_value=1))) is not None
    assert src._columnar_sql(src.plan(spec, None, KeyRange(column="region", lower="eu"))) is None
    assert source(mysql_db, columnar=False)._columnar_sql(src.plan(spec, None)) is None


def test_the_pymysql_reader_still_reads_every_type_value_by_value(mysql_db: str) -> None:
    src = source(mysql_db, columnar=False, batch_size=2)
    spec = StreamSpec(name=f"{mysql_db}.Order Items")
    rows = sorted(pa.Table.from_batches(list(src.read(spec, None)), src.arrow_schema(spec)).to_pylist(),
                  key=lambda r: r["id"])
    for row, inserted in zip(rows, TYPED_ROWS, strict=True):
        for column in TYPED_COLUMNS[1:]:
            want = inserted[column][1] if column in inserted else None
            assert _same(row[column], want, column), f"row {row['id']} {column}: {row[column]!r} != {want!r}"
    assert {(w.kind, w.column): w.count for w in src.warnings.take(spec.name)} == TYPED_WARNINGS


def test_incremental_reads_agree_between_the_readers(mysql_db: str) -> None:
    """The cursor bound becomes a literal for connectorx: both readers pick the same rows."""
    spec = StreamSpec(name=f"{mysql_db}.big", sync_mode=SyncMode.INCREMENTAL, cursor_field="changed_at",
                      primary_key=["id"])
    with admin(mysql_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT changed_at FROM big ORDER BY changed_at LIMIT 1 OFFSET 4000")
        (middle,) = cur.fetchone()
    state = StreamState(cursor_field="changed_at", cursor_value=middle)
    fast = sorted(r["id"] for r in rows_of(source(mysql_db).read(spec, state)))
    slow = sorted(r["id"] for r in rows_of(source(mysql_db, columnar=False).read(spec, state)))
    assert fast == slow
    assert 0 < len(fast) < 5000
