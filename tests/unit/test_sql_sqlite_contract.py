"""The bundled SQLite source passes the connector contract."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tidemark.connectors.sql.sqlite import SQLiteConfig, SQLiteSource
from tidemark.errors import FailureKind, SourceError
from tidemark_cli.samples import SHOP
from tidemark_testing.connector_contract import CONTRACT_ROWS, ContractTable, SourceContract

pytestmark = pytest.mark.unit


class TestSQLiteContract(SourceContract):
    @pytest.fixture
    def contract_table(self, tmp_path: Path) -> ContractTable:
        path = tmp_path / "contract.sqlite"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE contract (id INTEGER PRIMARY KEY, name TEXT, amount NUMERIC(10, 2), "
                         "updated_at DATETIME NOT NULL)")
            conn.executemany(
                "INSERT INTO contract VALUES (?, ?, ?, ?)",
                [(r["id"], r["name"], None if r["amount"] is None else str(r["amount"]),
                  r["updated_at"].isoformat(sep=" ")) for r in CONTRACT_ROWS],
            )
        conn.close()
        return ContractTable(source=SQLiteSource(SQLiteConfig(path=str(path))), stream="main.contract")


def test_sample_paths_name_the_databases_the_cli_package_installs() -> None:
    # tidemark-cli registers its sample under the `tidemark.samples` entry-point group.
    assert SQLiteConfig(path="sample:shop").resolved_path() == SHOP
    assert SQLiteSource(SQLiteConfig(path="sample:shop")).discover().streams
    with pytest.raises(SourceError, match=r"no sample database 'nope' is installed; installed: sample:shop") as err:
        SQLiteSource(SQLiteConfig(path="sample:nope")).check()
    assert err.value.kind is FailureKind.CONFIG
