"""Test data and read-back helpers shared by the lakehouse integration suites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog

from tidemark.lakehouse import LakehouseSettings
from tidemark.lakehouse.storage import warehouse_filesystem

SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False),
    pa.field("country", pa.string()),
    pa.field("amount", pa.decimal128(12, 2)),
    pa.field("updated_at", pa.timestamp("us", tz="UTC")),
    pa.field("note", pa.string()),
])
COUNTRIES = ["DE", "FR", "NL", "Ünïcode land", None]
START = datetime(2026, 1, 30, tzinfo=UTC)


def batch(ids: range | list[int], version: int = 1) -> pa.RecordBatch:
    """Rows spread over 5 countries (one NULL), 6 days in 3 months, 20 hours; ``version`` shows in ``note``."""
    ids = list(ids)
    return pa.record_batch([
        pa.array(ids, pa.int64()),
        pa.array([COUNTRIES[i % len(COUNTRIES)] for i in ids]),
        pa.array([Decimal(i * version) / 100 for i in ids], pa.decimal128(12, 2)),
        pa.array([START + timedelta(days=(i % 6) * 11, hours=i % 20) + timedelta(seconds=version) for i in ids],
                 pa.timestamp("us", tz="UTC")),
        pa.array([f"v{version}-{i}" for i in ids]),
    ], schema=SCHEMA)


def batches(ids: range, version: int = 1, size: int = 500) -> list[pa.RecordBatch]:
    return [batch(ids[start:start + size], version) for start in range(0, len(ids), size)]


def by_id(data: pa.Table) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in data.select(SCHEMA.names).to_pylist()}


def table_rows(catalog: Catalog, identifier: str) -> dict[int, dict[str, Any]]:
    return by_id(catalog.load_table(identifier).scan().to_arrow())


def expected(*groups: list[pa.RecordBatch]) -> dict[int, dict[str, Any]]:
    """Later groups win per id, as an upsert would."""
    result: dict[int, dict[str, Any]] = {}
    for group in groups:
        result.update(by_id(pa.Table.from_batches(group, schema=SCHEMA)))
    return result


def read_file(settings: LakehouseSettings, location: str) -> pa.Table:
    fs, path = warehouse_filesystem(settings, location)
    return pq.read_table(path, filesystem=fs)


def exists(settings: LakehouseSettings, location: str) -> bool:
    from pyarrow import fs as pafs

    fs, path = warehouse_filesystem(settings, location)
    return bool(fs.get_file_info(path).type == pafs.FileType.File)
