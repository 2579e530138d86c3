"""Every mapped type, source → worker → Iceberg → back, compared row by row with the source.

The typed tables (NULLs, extremes, unicode, mixed-case and reserved-word identifiers) are the
source suites' own fixtures, so a type added there is checked through Iceberg here too."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.fixtures.independent_reader import duckdb_rows
from tests.integration.test_source_mysql import mysql_db
from tests.integration.test_source_mysql import source as mysql_source
from tests.integration.test_source_postgres import pg
from tests.integration.test_source_postgres import source as pg_source
from tidemark.connectors import Source
from tidemark.events import DestinationSpec, StreamSpec
from tidemark.lakehouse import Lakehouse
from tidemark_ingest.worker.load import Progress, load_stream

pytestmark = pytest.mark.integration
__all__ = ["mysql_db", "pg"]  # fixtures, used by name




def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def round_trip(lake: Lakehouse, source: Source, stream: str) -> None:
    spec = StreamSpec(name=stream)
    stats = load_stream(lake, source, DestinationSpec(namespace="rt"), spec, "rt-run", Progress())
    assert stats.status == "succeeded", stats.error
    expected = sorted((r for b in source.read(spec, None) for r in b.to_pylist()), key=lambda r: r["id"])
    loaded = lake.catalog.load_table(stats.table)
    table = loaded.scan().to_arrow()
    actual = sorted(table.to_pylist(), key=lambda r: r["id"])
    # An independent reader opens the same table and sees the same rows and columns.
    independent = duckdb_rows(loaded, order_by="id")
    assert [r["id"] for r in independent] == [r["id"] for r in actual]
    assert list(independent[0]) == list(actual[0])
    assert stats.rows_written == len(expected) == len(actual) > 0
    assert list(actual[0]) == list(expected[0]), "same columns, same order"
    for want, got in zip(expected, actual, strict=True):
        diffs = {k: (want[k], got[k]) for k in want if not same(want[k], got[k])}
        assert not diffs, f"row {want['id']} differs: {diffs}"


def test_postgres_types_survive_iceberg(lake: Lakehouse, pg: dict[str, Any]) -> None:
    round_trip(lake, pg_source(pg), "Sales.Order Items")


def test_mariadb_types_survive_iceberg(lake: Lakehouse, mysql_db: str) -> None:
    round_trip(lake, mysql_source(mysql_db), f"{mysql_db}.Order Items")
