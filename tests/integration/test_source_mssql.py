"""The SQL Server source against a real server, when ``TIDEMARK_TEST_MSSQL_URL`` names one.

``mssql://user:password@host:1433/master``: a login that may create databases. No SQL
Server can run on the development machines, so without the variable these tests are
deselected; the generated SQL and the type table are covered by unit tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pytest

from tidemark.connectors import get_connector
from tidemark.connectors.sql.mssql import MssqlConfig, MssqlSource
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec
from tidemark_testing.connector_contract import CONTRACT_ROWS, ContractTable, SourceContract, rows_of

ENV = "TIDEMARK_TEST_MSSQL_URL"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get(ENV), reason=f"needs a SQL Server: set {ENV}=mssql://user:pw@host:1433/db"),
]

U = "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"
TYPED_SQL = """
CREATE TABLE [Order Items] (
    id BIGINT PRIMARY KEY, [select] SMALLINT, [MixedCase] INT, tiny TINYINT, flag BIT, num DECIMAL(38, 10),
    cash MONEY, fl REAL, dbl FLOAT, vc VARCHAR(20), nvc NVARCHAR(50), uid UNIQUEIDENTIFIER, vb VARBINARY(10),
    d DATE, t TIME(7), dt DATETIME, dt2 DATETIME2(7), dto DATETIMEOFFSET(7), doc XML
)"""
TYPED_INSERT = (
    "INSERT INTO [Order Items] VALUES (1, 7, 42, 255, 1, 12345.6789012345, 12.3456, 1.5, 2.25, 'O''Brien', "
    f"N'héllo 東京 🌊', '{U}', 0xDEADBEEF, '2024-02-29', '13:14:15.1234567', '2024-01-01 12:00:00.123', "
    "'2024-01-01 12:00:00.1234567', '2024-01-01 12:00:00.5 +02:00', '<a>1</a>')"
)
EXPECTED = {
    "select": 7, "MixedCase": 42, "tiny": 255, "flag": True, "num": Decimal("12345.6789012345"),
    "cash": Decimal("12.3456"), "fl": 1.5, "dbl": 2.25, "vc": "O'Brien", "nvc": "héllo 東京 🌊", "uid": U,
    "vb": b"\xde\xad\xbe\xef", "d": date(2024, 2, 29), "t": time(13, 14, 15, 123456),
    "dt": datetime(2024, 1, 1, 12, 0, 0, 123000), "dt2": datetime(2024, 1, 1, 12, 0, 0, 123456),
    "dto": datetime(2024, 1, 1, 10, 0, 0, 500000, tzinfo=UTC), "doc": "<a>1</a>",
}


def _admin_fields() -> dict[str, Any]:
    url = urlsplit(os.environ[ENV])
    return {"host": url.hostname or "localhost", "port": url.port or 1433, "user": unquote(url.username or ""),
            "password": unquote(url.password or ""), "database": url.path.lstrip("/") or "master"}


def _run(database: str, *statements: str, rows: list[tuple[Any, ...]] | None = None) -> None:
    """Run ``statements``; with ``rows``, the last statement is an INSERT run once per row."""
    import pymssql

    f = _admin_fields()
    with pymssql.connect(server=f["host"], port=str(f["port"]), user=f["user"], password=f["password"],
                         database=database, autocommit=True) as conn:
        cur = conn.cursor()
        last = len(statements) - 1
        for i, statement in enumerate(statements):
            if i == last and rows is not None:
                cur.executemany(statement, rows)
            else:
                cur.execute(statement)


@pytest.fixture(scope="module")
def mssql_db() -> Iterator[str]:
    name = f"tidemark_src_{uuid.uuid4().hex[:12]}"
    _run(_admin_fields()["database"], f"CREATE DATABASE [{name}]")
    try:
        _run(name,
             TYPED_SQL, TYPED_INSERT, "INSERT INTO [Order Items] (id) VALUES (2)",
             "CREATE TABLE composite (region VARCHAR(10) NOT NULL, n INT NOT NULL, PRIMARY KEY (region, n))",
             "INSERT INTO composite VALUES ('eu', 1), ('eu', 2)",
             "CREATE TABLE no_key (label NVARCHAR(10))", "INSERT INTO no_key VALUES ('x'), ('x')",
             "CREATE TABLE contract (id INT PRIMARY KEY, name NVARCHAR(100), amount DECIMAL(10, 2), "
             "updated_at DATETIME2(6) NOT NULL)",
             "INSERT INTO contract VALUES (%s, %s, %s, %s)",
             rows=[(r["id"], r["name"], r["amount"], r["updated_at"]) for r in CONTRACT_ROWS])
        yield name
    finally:
        _run(_admin_fields()["database"],
             f"ALTER DATABASE [{name}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE", f"DROP DATABASE [{name}]")


def source(database: str, **overrides: Any) -> MssqlSource:
    return MssqlSource(MssqlConfig(**(_admin_fields() | {"database": database} | overrides)))


class TestMssqlContract(SourceContract):
    @pytest.fixture
    def contract_table(self, mssql_db: str) -> ContractTable:
        return ContractTable(source=source(mssql_db), stream="dbo.contract")


def test_registry_knows_mssql() -> None:
    assert get_connector("mssql") is MssqlSource


def test_every_type_round_trips(mssql_db: str) -> None:
    src = source(mssql_db)
    info = src.discover().stream("dbo.Order Items")
    assert info is not None
    assert info.primary_key == ["id"]
    spec = StreamSpec(name="dbo.Order Items")
    batches = list(src.read(spec, None))
    rows = sorted(pa.Table.from_batches(batches, src.arrow_schema(spec)).to_pylist(), key=lambda r: r["id"])
    for column, want in EXPECTED.items():
        got = rows[0][column].upper() if column == "uid" else rows[0][column]
        assert got == want, f"{column}: {got!r} != {want!r}"
        assert rows[1][column] is None


def test_composite_and_keyless(mssql_db: str) -> None:
    catalog = source(mssql_db).discover()
    assert catalog.stream("dbo.composite").primary_key == ["region", "n"]  # type: ignore[union-attr]
    assert catalog.stream("dbo.no_key").primary_key == []  # type: ignore[union-attr]
    assert len(rows_of(source(mssql_db).read(StreamSpec(name="dbo.no_key"), None))) == 2


def test_wrong_password_and_missing_database(mssql_db: str) -> None:
    with pytest.raises(SourceError) as caught:
        source(mssql_db, password="wrong-password-for-sure").check()
    assert caught.value.kind is FailureKind.CONFIG
    assert "wrong-password-for-sure" not in caught.value.message
    with pytest.raises(SourceError) as caught:
        source("tidemark_src_missing").check()
    assert caught.value.kind is FailureKind.CONFIG
    assert "tidemark_src_missing" in caught.value.message
