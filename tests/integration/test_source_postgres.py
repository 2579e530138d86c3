"""The PostgreSQL source against a real server: contract, every mapped type, modes, errors."""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.fixtures.password_pg import SUPERUSER_PASSWORD, PasswordServer
from tidemark.connectors import get_connector
from tidemark.connectors.sql.postgres import PostgresConfig, PostgresSource
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode
from tidemark_testing.connector_contract import CONTRACT_ROWS, ContractTable, SourceContract, rows_of
from tidemark_testing.ports import free_port
from tidemark_testing.postgres import create_database, drop_database

pytestmark = pytest.mark.integration

PASSWORD = "s3cr3t-Pa55word"
U = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")

SCHEMA_SQL = """
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE contract (id integer PRIMARY KEY, name text, amount numeric(10, 2),
                       updated_at timestamptz NOT NULL);
CREATE SCHEMA "Sales";
CREATE TABLE "Sales"."Order Items" (
    id bigint PRIMARY KEY, "select" smallint, "MixedCase" integer, big bigint,
    num numeric(38, 10), num_small numeric(5, 2), num_free numeric, real_v real, dbl double precision,
    flag boolean, txt text, vc varchar(20), ch char(4), uid uuid, js json, jsb jsonb, bin bytea,
    d date, t time, tz_t timetz, ts timestamp, tstz timestamptz, iv interval,
    ints integer[], texts text[], nums numeric(6, 2)[], feeling mood, money_v money, spot point
);
CREATE TABLE composite (region text NOT NULL, n integer NOT NULL, label text, PRIMARY KEY (region, n));
CREATE TABLE no_key (label text, seen_at timestamp);
CREATE VIEW happy_items AS SELECT id, txt FROM "Sales"."Order Items" WHERE feeling = 'happy';
CREATE TABLE big (id integer PRIMARY KEY, v text, changed_at timestamp NOT NULL);
INSERT INTO big SELECT g, md5(g::text), timestamp '2024-01-01' + g * interval '1 minute'
FROM generate_series(1, 5000) g;
ANALYZE big;
"""

TYPED_COLUMNS = [
    "id", "select", "MixedCase", "big", "num", "num_small", "num_free", "real_v", "dbl", "flag", "txt", "vc",
    "ch", "uid", "js", "jsb", "bin", "d", "t", "tz_t", "ts", "tstz", "iv", "ints", "texts", "nums", "feeling",
    "money_v", "spot",
]

# What each row is inserted as (SQL text per column, cast by the server) and what Arrow must hold.
TYPED_ROWS: list[tuple[dict[str, str | None], dict[str, Any]]] = [
    (
        {"select": "7", "MixedCase": "42", "big": "9000000000", "num": "12345.6789012345", "num_small": "-3.5",
         "num_free": "3.14159265358979323846264338327950288419716939937510", "real_v": "1.5", "dbl": "2.25",
         "flag": "true", "txt": "héllo wörld 🌊 東京", "vc": "O'Brien", "ch": "ab", "uid": str(U),
         "js": '{"b": 1, "a": [true, null]}', "jsb": '{"é": "ü", "n": 1.5}', "bin": "\\xdeadbeef",
         "d": "2024-02-29", "t": "13:14:15.123456", "tz_t": "12:00:00+02", "ts": "2024-01-01 12:00:00.123456",
         "tstz": "2024-01-01 12:00:00+02", "iv": "1 year 2 months 3 days 04:05:06.5", "ints": "{1,NULL,3}",
         "texts": '{"a","b c",NULL}', "nums": "{1.50,NULL}", "feeling": "happy", "money_v": "12.34",
         "spot": "(1,2)"},
        {"select": 7, "MixedCase": 42, "big": 9_000_000_000, "num": Decimal("12345.6789012345"),
         "num_small": Decimal("-3.50"), "num_free": "3.14159265358979323846264338327950288419716939937510",
         "real_v": 1.5, "dbl": 2.25, "flag": True, "txt": "héllo wörld 🌊 東京", "vc": "O'Brien", "ch": "ab  ",
         "uid": str(U), "js": {"b": 1, "a": [True, None]}, "jsb": {"é": "ü", "n": 1.5}, "bin": b"\xde\xad\xbe\xef",
         "d": date(2024, 2, 29), "t": time(13, 14, 15, 123456), "tz_t": "12:00:00+02",
         "ts": datetime(2024, 1, 1, 12, 0, 0, 123456), "tstz": datetime(2024, 1, 1, 10, 0, tzinfo=UTC),
         "iv": "P1Y2M3DT4H5M6.5S", "ints": [1, None, 3], "texts": ["a", "b c", None],
         "nums": [Decimal("1.50"), None], "feeling": "happy", "money_v": Decimal("12.34"), "spot": "(1,2)"},
    ),
    ({}, {}),  # every column NULL
    (
        {"select": "-32768", "MixedCase": "2147483647", "big": "-9223372036854775808",
         "num": "9999999999999999999999999999.9999999999", "num_small": "999.99", "num_free": "-0.000001",
         "real_v": "-3.4028235e38", "dbl": "1.7976931348623157e308", "flag": "false", "txt": "", "vc": "",
         "ch": "", "uid": "00000000-0000-0000-0000-000000000000", "js": "[]", "jsb": "{}", "bin": "\\x",
         "d": "0001-01-01", "t": "23:59:59.999999", "tz_t": "00:00:00-14", "ts": "1900-01-01 00:00:00",
         "tstz": "9999-12-31 23:59:59.999999+00", "iv": "-1 days", "ints": "{}", "texts": "{}", "nums": "{}",
         "feeling": "sad", "money_v": "-92233720368547758.08", "spot": "(-1.5,0)"},
        {"select": -32768, "MixedCase": 2147483647, "big": -9223372036854775808,
         "num": Decimal("9999999999999999999999999999.9999999999"), "num_small": Decimal("999.99"),
         "num_free": "-0.000001", "real_v": float(pa.scalar(-3.4028235e38, pa.float32()).as_py()),
         "dbl": 1.7976931348623157e308, "flag": False, "txt": "", "vc": "", "ch": "    ",
         "uid": "00000000-0000-0000-0000-000000000000", "js": [], "jsb": {}, "bin": b"", "d": date(1, 1, 1),
         "t": time(23, 59, 59, 999999), "tz_t": "00:00:00-14", "ts": datetime(1900, 1, 1),
         "tstz": datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "iv": "P-1D", "ints": [], "texts": [],
         "nums": [], "feeling": "sad", "money_v": Decimal("-92233720368547758.08"), "spot": "(-1.5,0)"},
    ),
    (
        # Values Arrow cannot hold: read as NULL (and logged), never a failed run.
        {"num": "NaN", "num_small": "NaN", "dbl": "NaN", "d": "infinity", "ts": "-infinity", "tstz": "infinity"},
        {"num": None, "num_small": None, "dbl": math.nan, "d": None, "ts": None, "tstz": None},
    ),
]

EXPECTED_TYPES = {
    "id": pa.int64(), "select": pa.int16(), "MixedCase": pa.int32(), "big": pa.int64(),
    "num": pa.decimal128(38, 10), "num_small": pa.decimal128(5, 2), "num_free": pa.string(),
    "real_v": pa.float32(), "dbl": pa.float64(), "flag": pa.bool_(), "txt": pa.string(), "vc": pa.string(),
    "ch": pa.string(), "uid": pa.string(), "js": pa.string(), "jsb": pa.string(), "bin": pa.binary(),
    "d": pa.date32(), "t": pa.time64("us"), "tz_t": pa.string(), "ts": pa.timestamp("us"),
    "tstz": pa.timestamp("us", tz="UTC"), "iv": pa.string(), "ints": pa.list_(pa.int32()),
    "texts": pa.list_(pa.string()), "nums": pa.list_(pa.decimal128(6, 2)), "feeling": pa.string(),
    "money_v": pa.decimal128(19, 2), "spot": pa.string(),
}


def _insert_typed(conn: psycopg.Connection[Any]) -> None:
    # The server parses each value from its text form into the column's type.
    for i, (values, _) in enumerate(TYPED_ROWS, start=1):
        names = ["id", *values]
        conn.execute(
            sql.SQL('INSERT INTO "Sales"."Order Items" ({}) VALUES ({})').format(
                sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(sql.Placeholder() * len(names))
            ),
            [str(i), *values.values()],
        )


@pytest.fixture(scope="module")
def pg(pg_admin_dsn: str) -> Iterator[dict[str, Any]]:
    """A fresh database ``tidemark_src_*`` with the test tables; dropped afterwards."""
    url = create_database(pg_admin_dsn, "tidemark_src")
    parsed = make_url(url)
    conninfo = f"host={parsed.host} port={parsed.port or 5432} user={parsed.username} dbname={parsed.database}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
        _insert_typed(conn)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO contract VALUES (%s, %s, %s, %s)",
                            [(r["id"], r["name"], r["amount"], r["updated_at"].replace(tzinfo=UTC))
                             for r in CONTRACT_ROWS])
            cur.executemany("INSERT INTO composite VALUES (%s, %s, %s)",
                            [("eu", 1, "a"), ("eu", 2, "b"), ("us", 1, None)])
            cur.executemany("INSERT INTO no_key VALUES (%s, %s)", [("x", datetime(2024, 1, 1)), ("x", None)])
    try:
        yield {"host": parsed.host, "port": parsed.port or 5432, "user": parsed.username,
               "database": parsed.database, "conninfo": conninfo}
    finally:
        drop_database(pg_admin_dsn, url)


def source(pg: dict[str, Any], **overrides: Any) -> PostgresSource:
    fields = {k: pg[k] for k in ("host", "port", "user", "database")} | overrides
    return PostgresSource(PostgresConfig(**fields))


class TestPostgresContract(SourceContract):
    @pytest.fixture(params=["adbc", "psycopg"])
    def contract_table(self, pg: dict[str, Any], request: pytest.FixtureRequest) -> ContractTable:
        return ContractTable(source=source(pg, engine=request.param), stream="public.contract")


# --------------------------------------------------------------------------- discovery


def test_registry_knows_postgres() -> None:
    assert get_connector("postgres") is PostgresSource


def test_discover_maps_every_type_and_quotes_names(pg: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tidemark.connectors"):
        catalog = source(pg).discover()
    info = catalog.stream("Sales.Order Items")
    assert info is not None
    assert {c.name: c.type for c in info.columns} == {k: str(v) for k, v in EXPECTED_TYPES.items()}
    assert info.primary_key == ["id"]
    assert {"id", "select", "num", "d", "ts", "tstz"} <= set(info.cursor_candidates)
    assert not {"txt", "flag", "dbl", "ints"} & set(info.cursor_candidates)
    by_name = {c.name: c for c in info.columns}
    assert by_name["num"].source_type == "numeric(38,10)"
    assert by_name["id"].nullable is False
    assert by_name["txt"].nullable is True
    warned = {getattr(r, "fields", {}).get("column") for r in caplog.records}
    assert {"spot", "num_free"} <= warned  # unsupported and unbounded types are announced


def test_discover_lists_keys_views_and_keyless_tables(pg: dict[str, Any]) -> None:
    catalog = source(pg).discover()
    names = {s.name for s in catalog.streams}
    assert {"public.contract", "public.composite", "public.no_key", "public.happy_items", "public.big",
            "Sales.Order Items"} <= names
    assert catalog.stream("public.composite").primary_key == ["region", "n"]  # type: ignore[union-attr]
    assert catalog.stream("public.no_key").primary_key == []  # type: ignore[union-attr]
    assert catalog.stream("public.happy_items").primary_key == []  # type: ignore[union-attr]


def test_schemas_and_tables_limit_the_catalog(pg: dict[str, Any]) -> None:
    assert {s.name for s in source(pg, schemas=["Sales"]).discover().streams} == {"Sales.Order Items"}
    only = source(pg, tables=["public.composite", "public.no_key"])
    assert {s.name for s in only.discover().streams} == {"public.composite", "public.no_key"}


# --------------------------------------------------------------------------- reading


def _same(actual: Any, expected: Any, column: str) -> bool:
    if column in ("js", "jsb") and actual is not None:
        return bool(json.loads(actual) == expected)
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(actual, float) and math.isnan(actual)
    return bool(actual == expected)


@pytest.mark.parametrize("engine", ["adbc", "psycopg"])
def test_every_type_round_trips_value_by_value(pg: dict[str, Any], engine: str) -> None:
    src = source(pg, engine=engine)
    spec = StreamSpec(name="Sales.Order Items")
    schema = src.arrow_schema(spec)
    assert schema.names == TYPED_COLUMNS
    batches = list(src.read(spec, None))
    assert all(b.schema.equals(schema) for b in batches)
    rows = sorted(pa.Table.from_batches(batches, schema).to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(1, len(TYPED_ROWS) + 1))
    for row, (_, expected) in zip(rows, TYPED_ROWS, strict=True):
        for column in TYPED_COLUMNS[1:]:
            want = expected.get(column)
            assert _same(row[column], want, column), f"row {row['id']} {column}: {row[column]!r} != {want!r}"
    # Each NaN / ±infinity read as NULL is counted for its column, the same on both engines.
    counted = {(w.kind, w.column): w.count for w in src.warnings.take(spec.name) if w.kind != "type_as_text"}
    assert counted == {("value_as_null", c): 1 for c in ("num", "num_small", "d", "ts", "tstz")}


EDGE_DECIMALS = {  # column: (type, values) — the largest, smallest and finest each type holds
    "whole": ("numeric(18, 0)", ["999999999999999999", "-999999999999999999", "0", "1", "-1"]),
    "fine": ("numeric(18, 18)", ["0.999999999999999999", "-0.999999999999999999", "0.000000000000000001",
                                 "-0.000000000000000001", "0"]),
    "money4": ("numeric(18, 4)", ["99999999999999.9999", "-99999999999999.9999", "-0.0001", "12.3400", "0"]),
    "tiny": ("numeric(1, 0)", ["9", "-9", "0", "5", "-5"]),
    "past_int8": ("numeric(19, 2)", ["99999999999999999.99", "-99999999999999999.99", "-0.01", "0.10", "0"]),
}


@pytest.mark.parametrize("engine", ["adbc", "psycopg"])
def test_decimals_at_the_edges_of_their_precision_read_exactly(pg: dict[str, Any], engine: str) -> None:
    """Every value exactly as stored, at the largest, smallest and finest each precision holds (18 digits
    is int8's edge, 19 past it), NaN as a counted NULL, on both engines."""
    names = list(EDGE_DECIMALS)
    with psycopg.connect(pg["conninfo"], autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS edge_decimals")
        conn.execute("CREATE TABLE edge_decimals (id int PRIMARY KEY, "
                     + ", ".join(f"{n} {t}" for n, (t, _) in EDGE_DECIMALS.items()) + ")")
        rows = [[i, *(EDGE_DECIMALS[n][1][i] for n in names)] for i in range(5)]
        rows += [[5, *(None for _ in names)], [6, *("NaN" for _ in names)]]
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO edge_decimals VALUES ({', '.join(['%s'] * (len(names) + 1))})", rows)
    src = source(pg, engine=engine)
    spec = StreamSpec(name="public.edge_decimals")
    read = sorted(rows_of(src.read(spec, None)), key=lambda r: r["id"])
    for row in read[:5]:
        for name in names:
            assert row[name] == Decimal(EDGE_DECIMALS[name][1][row["id"]]), (name, row[name])
            assert row[name].as_tuple().exponent == -int(EDGE_DECIMALS[name][0].split(",")[1].strip(" )"))
    assert all(read[5][n] is None and read[6][n] is None for n in names)
    counted = {w.column: w.count for w in src.warnings.take(spec.name) if w.kind == "value_as_null"}
    assert counted == dict.fromkeys(names, 1)  # the NaNs, not the NULLs


@pytest.mark.parametrize("engine", ["adbc", "psycopg"])
@pytest.mark.parametrize("precision", [12, 30])
def test_a_keyless_merge_reads_in_numeric_cursor_order_whatever_the_decimal_travels_as(
        pg: dict[str, Any], engine: str, precision: int) -> None:
    """A view has no key, so an incremental merge reads in cursor order and the row read last wins:
    that order must be the numbers', never their text's ("10.00" sorts before "9.00")."""
    with psycopg.connect(pg["conninfo"], autocommit=True) as conn:
        conn.execute("DROP VIEW IF EXISTS versions_v")
        conn.execute("DROP TABLE IF EXISTS versions")
        conn.execute(f"CREATE TABLE versions (k text, version numeric({precision}, 2))")
        conn.execute("INSERT INTO versions VALUES ('a', 10.00), ('a', 9.00), ('a', 100.00), ('a', 2.50)")
        conn.execute("CREATE VIEW versions_v AS SELECT * FROM versions")
    spec = StreamSpec(name="public.versions_v", sync_mode=SyncMode.INCREMENTAL, cursor_field="version",
                      primary_key=["k"])
    read = [r["version"] for r in rows_of(source(pg, engine=engine).read(spec, None))]
    assert read == [Decimal("2.50"), Decimal("9.00"), Decimal("10.00"), Decimal("100.00")]


def test_composite_and_keyless_tables_read_completely(pg: dict[str, Any]) -> None:
    src = source(pg)
    composite = rows_of(src.read(StreamSpec(name="public.composite"), None))
    assert sorted((r["region"], r["n"], r["label"]) for r in composite) == [
        ("eu", 1, "a"), ("eu", 2, "b"), ("us", 1, None)]
    keyless = rows_of(src.read(StreamSpec(name="public.no_key"), None))
    assert sorted(keyless, key=lambda r: r["seen_at"] is None) == [
        {"label": "x", "seen_at": datetime(2024, 1, 1)}, {"label": "x", "seen_at": None}]


def test_batches_respect_batch_size(pg: dict[str, Any]) -> None:
    batches = list(source(pg, batch_size=1000).read(StreamSpec(name="public.big"), None))
    assert sum(b.num_rows for b in batches) == 5000
    assert max(b.num_rows for b in batches) <= 1000


@pytest.mark.parametrize("engine", ["adbc", "psycopg"])
def test_partitions_cover_every_row_once(pg: dict[str, Any], engine: str) -> None:
    src = source(pg, engine=engine)
    spec = StreamSpec(name="public.big", sync_mode=SyncMode.INCREMENTAL, cursor_field="changed_at")
    parts = src.partitions(spec, 4)
    assert len(parts) == 4
    assert parts[0].lower is None
    assert parts[-1].upper is None
    seen: list[int] = []
    for part in parts:
        ids = [r["id"] for r in rows_of(src.read_partition(spec, None, part))]
        assert ids, f"empty partition {part}"
        seen.extend(ids)
    assert sorted(seen) == list(range(1, 5001))
    # A partition read honours the cursor too.
    from tidemark.connectors.base import StreamState

    state = StreamState(cursor_field="changed_at", cursor_value=datetime(2024, 1, 4, 1, 20))  # row 4400
    past = [r["id"] for p in parts for r in rows_of(src.read_partition(spec, state, p))]
    assert sorted(past) == list(range(4400, 5001))


def test_a_view_or_keyless_table_is_not_split(pg: dict[str, Any]) -> None:
    src = source(pg)
    assert src.partitions(StreamSpec(name="public.happy_items"), 4) == []
    assert src.partitions(StreamSpec(name="public.no_key"), 4) == []


def test_incremental_needs_a_cursor(pg: dict[str, Any]) -> None:
    spec = StreamSpec(name="public.big", sync_mode=SyncMode.INCREMENTAL)
    with pytest.raises(SourceError) as caught:
        list(source(pg).read(spec, None))
    assert caught.value.kind is FailureKind.CONFIG
    assert "cursor" in caught.value.message


def test_lookback_on_an_integer_cursor_is_in_cursor_units(pg: dict[str, Any]) -> None:
    from tidemark.connectors.base import StreamState

    spec = StreamSpec(name="public.big", sync_mode=SyncMode.INCREMENTAL, cursor_field="id", lookback=10)
    ids = [r["id"] for r in rows_of(source(pg).read(spec, StreamState(cursor_field="id", cursor_value=4990)))]
    assert ids == list(range(4980, 5001))


# --------------------------------------------------------------------------- check errors


def _check_error(src: PostgresSource) -> SourceError:
    with pytest.raises(SourceError) as caught:
        src.check()
    assert PASSWORD not in caught.value.message
    assert PASSWORD not in str(caught.value.detail)
    return caught.value


def test_check_missing_database(pg: dict[str, Any]) -> None:
    err = _check_error(source(pg, database="tidemark_src_missing", password=PASSWORD))
    assert err.kind is FailureKind.CONFIG
    assert err.message == f"database 'tidemark_src_missing' does not exist on {pg['host']}:{pg['port']}"


def test_check_unknown_host(pg: dict[str, Any]) -> None:
    err = _check_error(source(pg, host="no-such-host.invalid", password=PASSWORD, connect_timeout_seconds=2))
    assert err.kind is FailureKind.CONFIG
    assert "'no-such-host.invalid' could not be resolved" in err.message


def test_check_unreachable_port(pg: dict[str, Any]) -> None:
    err = _check_error(source(pg, host="127.0.0.1", port=free_port(), password=PASSWORD))
    assert err.kind is FailureKind.TRANSIENT
    assert "nothing accepts connections at 127.0.0.1:" in err.message


def test_check_missing_schema_or_table(pg: dict[str, Any]) -> None:
    err = _check_error(source(pg, schemas=["nope"]))
    assert err.kind is FailureKind.CONFIG
    assert "['nope'] do not exist" in err.message
    err = _check_error(source(pg, tables=["public.nope"]))
    assert err.kind is FailureKind.CONFIG
    assert "['public.nope'] do not exist" in err.message


@pytest.fixture(scope="module")
def reader_without_select(pg: dict[str, Any]) -> Iterator[str]:
    """A login role that may connect and use the schema, but may SELECT nothing."""
    role = f"tm_noselect_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg["conninfo"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
    try:
        yield role
    finally:
        with psycopg.connect(pg["conninfo"], autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_check_missing_privilege(pg: dict[str, Any], reader_without_select: str) -> None:
    err = _check_error(source(pg, user=reader_without_select, tables=["public.contract"]))
    assert err.kind is FailureKind.CONFIG
    assert f"user '{reader_without_select}' lacks SELECT on public.contract" in err.message
    err = _check_error(source(pg, user=reader_without_select, schemas=["public"]))
    assert err.kind is FailureKind.CONFIG
    assert "lacks SELECT" in err.message


def test_reading_without_privilege_is_a_config_error(pg: dict[str, Any], reader_without_select: str) -> None:
    # The table is invisible to this user: reading it names the stream, it does not crash.
    with pytest.raises(SourceError) as caught:
        list(source(pg, user=reader_without_select).read(StreamSpec(name="public.contract"), None))
    assert caught.value.kind is FailureKind.CONFIG
    assert "public.contract" in caught.value.message


def test_check_wrong_password(password_server: PasswordServer) -> None:
    base = {"host": "127.0.0.1", "port": password_server.port, "user": "postgres", "database": "postgres"}
    PostgresSource(PostgresConfig(**base, password=SUPERUSER_PASSWORD)).check()  # the right one works
    err = _check_error(PostgresSource(PostgresConfig(**base, password="wrong-" + SUPERUSER_PASSWORD)))
    assert err.kind is FailureKind.CONFIG
    assert err.message == "authentication failed for user 'postgres': check the user name and password"
    assert err.detail == {"field": "password"}
