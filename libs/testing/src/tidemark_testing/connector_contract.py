"""The contract every source passes, as a pytest base class.

A connector's test module subclasses :class:`SourceContract` and overrides the
``contract_table`` fixture: it creates, in its own database, a table holding
:data:`CONTRACT_ROWS` with the columns of :data:`CONTRACT_COLUMNS` (``id`` the
primary key) and returns a :class:`ContractTable` naming the source and the stream.
The inherited tests then check what every caller of a source relies on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from tidemark.connectors.base import Source, StreamState
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode

# Column name → what it holds; each source picks its own native types for them.
CONTRACT_COLUMNS = {
    "id": "integer, primary key",
    "name": "text (unicode), nullable",
    "amount": "decimal(10, 2), nullable",
    "updated_at": "timestamp (UTC wall-clock values below), not null: the cursor",
}


def _ts(day: int, hour: int) -> datetime:
    return datetime(2024, 3, day, hour, 0, 0)


# Rows 3 and 4 share a cursor value: a boundary that `>=` must include and `>` exclude.
CONTRACT_ROWS: list[dict[str, Any]] = [
    {"id": 1, "name": "Ada", "amount": Decimal("10.50"), "updated_at": _ts(1, 8)},
    {"id": 2, "name": "Zoë", "amount": Decimal("-99999999.99"), "updated_at": _ts(1, 9)},
    {"id": 3, "name": "東京", "amount": None, "updated_at": _ts(2, 10)},
    {"id": 4, "name": None, "amount": Decimal("0.01"), "updated_at": _ts(2, 10)},
    {"id": 5, "name": "emoji 🌊", "amount": Decimal("99999999.99"), "updated_at": _ts(2, 11)},
    {"id": 6, "name": "O'Brien \"quoted\"", "amount": Decimal("1.00"), "updated_at": _ts(3, 12)},
]


@dataclass
class ContractTable:
    source: Source
    stream: str


def normalise(value: Any) -> Any:
    """Aware timestamps as naive UTC, so naive and zoned sources compare alike."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def rows_of(batches: Iterable[pa.RecordBatch]) -> list[dict[str, Any]]:
    return [{k: normalise(v) for k, v in row.items()} for b in batches for row in b.to_pylist()]


def ids(rows: Iterable[dict[str, Any]]) -> list[int]:
    return sorted(int(r["id"]) for r in rows)


def expected_ids(predicate: Any) -> list[int]:
    return sorted(r["id"] for r in CONTRACT_ROWS if predicate(r))


class SourceContract:
    """Inherit, override ``contract_table``; every test here must pass."""

    @pytest.fixture
    def contract_table(self) -> ContractTable:
        raise NotImplementedError("override the contract_table fixture")

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def spec(t: ContractTable, mode: SyncMode = SyncMode.FULL_REFRESH, **extra: Any) -> StreamSpec:
        cursor = None if mode is SyncMode.FULL_REFRESH else "updated_at"
        return StreamSpec(name=t.stream, sync_mode=mode, cursor_field=cursor, primary_key=["id"], **extra)

    @staticmethod
    def state(value: Any) -> StreamState:
        return StreamState(cursor_field="updated_at", cursor_value=value)

    @staticmethod
    def boundary(t: ContractTable) -> Any:
        """The boundary cursor as the writer would hand it back: typed like the column."""
        typ = t.source.arrow_schema(SourceContract.spec(t)).field("updated_at").type
        value = CONTRACT_ROWS[2]["updated_at"]
        return value.replace(tzinfo=UTC) if typ.tz else value

    # -- check and discover ------------------------------------------------

    def test_check_accepts_a_working_configuration(self, contract_table: ContractTable) -> None:
        contract_table.source.check()

    def test_discover_finds_the_table_with_its_key_and_types(self, contract_table: ContractTable) -> None:
        info = contract_table.source.discover().stream(contract_table.stream)
        assert info is not None, f"{contract_table.stream} missing from the catalog"
        assert info.primary_key == ["id"]
        types = {c.name: c.type for c in info.columns}
        assert set(types) >= set(CONTRACT_COLUMNS)
        assert pa.types.is_integer(pa.type_for_alias(types["id"]))
        assert types["name"] == "string"
        # Exact decimal, wide enough for the rows: SQL declares (10, 2); an API without
        # precision in its metadata picks a wider one, which holds the same values.
        amount = re.fullmatch(r"decimal128\((\d+), (\d+)\)", types["amount"])
        assert amount is not None, f"amount is {types['amount']}, not a decimal"
        precision, scale = int(amount[1]), int(amount[2])
        assert scale >= 2, f"amount is {types['amount']}, fewer fractional digits than decimal(10, 2)"
        assert precision - scale >= 8, f"amount is {types['amount']}, fewer integer digits than decimal(10, 2)"
        assert types["updated_at"].startswith("timestamp[us")
        assert {"id", "updated_at"} <= set(info.cursor_candidates)
        assert "name" not in info.cursor_candidates

    # -- full refresh --------------------------------------------------------

    def test_full_refresh_reads_every_row_as_declared(self, contract_table: ContractTable) -> None:
        spec = self.spec(contract_table)
        schema = contract_table.source.arrow_schema(spec)
        batches = list(contract_table.source.read(spec, None))
        assert batches, "a table with rows produced no batch"
        for batch in batches:
            assert batch.schema.equals(schema), f"batch schema {batch.schema} != arrow_schema {schema}"
        rows = sorted(rows_of(batches), key=lambda r: r["id"])
        assert rows == CONTRACT_ROWS

    def test_full_refresh_ignores_a_saved_cursor(self, contract_table: ContractTable) -> None:
        rows = rows_of(contract_table.source.read(self.spec(contract_table), self.state(self.boundary(contract_table))))
        assert ids(rows) == expected_ids(lambda r: True)

    def test_selected_columns_only(self, contract_table: ContractTable) -> None:
        spec = self.spec(contract_table, columns=["updated_at", "id"])
        assert contract_table.source.arrow_schema(spec).names == ["updated_at", "id"]
        batches = list(contract_table.source.read(spec, None))
        assert all(b.schema.names == ["updated_at", "id"] for b in batches)
        assert ids(rows_of(batches)) == expected_ids(lambda r: True)

    # -- incremental ---------------------------------------------------------

    def test_incremental_without_state_reads_everything_in_cursor_order(self, contract_table: ContractTable) -> None:
        rows = rows_of(contract_table.source.read(self.spec(contract_table, SyncMode.INCREMENTAL), None))
        assert ids(rows) == expected_ids(lambda r: True)
        cursors = [r["updated_at"] for r in rows]
        assert cursors == sorted(cursors)

    def test_incremental_reads_from_the_cursor_inclusive(self, contract_table: ContractTable) -> None:
        boundary = self.boundary(contract_table)
        spec = self.spec(contract_table, SyncMode.INCREMENTAL)
        rows = rows_of(contract_table.source.read(spec, self.state(boundary)))
        assert ids(rows) == expected_ids(lambda r: r["updated_at"] >= normalise(boundary)) == [3, 4, 5, 6]

    def test_incremental_append_reads_rows_past_the_cursor(self, contract_table: ContractTable) -> None:
        boundary = self.boundary(contract_table)
        spec = self.spec(contract_table, SyncMode.INCREMENTAL_APPEND)
        rows = rows_of(contract_table.source.read(spec, self.state(boundary)))
        assert ids(rows) == expected_ids(lambda r: r["updated_at"] > normalise(boundary)) == [5, 6]

    def test_incremental_lookback_reads_again_before_the_cursor(self, contract_table: ContractTable) -> None:
        boundary = self.boundary(contract_table)
        spec = self.spec(contract_table, SyncMode.INCREMENTAL, lookback=int(timedelta(hours=25).total_seconds()))
        rows = rows_of(contract_table.source.read(spec, self.state(boundary)))
        since = normalise(boundary) - timedelta(hours=25)
        assert ids(rows) == expected_ids(lambda r: r["updated_at"] >= since) == [2, 3, 4, 5, 6]

    def test_a_cursor_saved_as_json_text_reads_the_same(self, contract_table: ContractTable) -> None:
        boundary = self.boundary(contract_table)
        as_text = json.loads(json.dumps(boundary.isoformat()))
        spec = self.spec(contract_table, SyncMode.INCREMENTAL_APPEND)
        assert ids(rows_of(contract_table.source.read(spec, self.state(as_text)))) == [5, 6]

    def test_a_cursor_past_every_row_reads_nothing(self, contract_table: ContractTable) -> None:
        spec = self.spec(contract_table, SyncMode.INCREMENTAL_APPEND)
        late = self.boundary(contract_table) + timedelta(days=365)
        assert rows_of(contract_table.source.read(spec, self.state(late))) == []

    # -- errors ----------------------------------------------------------------

    def test_unknown_stream_is_a_config_error(self, contract_table: ContractTable) -> None:
        namespace = contract_table.stream.rsplit(".", 1)[0]
        spec = StreamSpec(name=f"{namespace}.no_such_table_here")
        with pytest.raises(SourceError) as caught:
            list(contract_table.source.read(spec, None))
        assert caught.value.kind is FailureKind.CONFIG
        assert "no_such_table_here" in caught.value.message

    def test_unknown_column_is_a_config_error(self, contract_table: ContractTable) -> None:
        spec = self.spec(contract_table, columns=["id", "no_such_column"])
        with pytest.raises(SourceError) as caught:
            list(contract_table.source.read(spec, None))
        assert caught.value.kind is FailureKind.CONFIG
        assert "no_such_column" in caught.value.message
