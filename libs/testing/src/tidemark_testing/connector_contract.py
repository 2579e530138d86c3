"""The contract every source passes, as a pytest base class.

A connector's test module subclasses :class:`SourceContract` and overrides the
``contract_table`` fixture: it creates, in its own database, a table holding
:data:`CONTRACT_ROWS` with the columns of :data:`CONTRACT_COLUMNS` (``id`` the
primary key) and returns a :class:`ContractTable` naming the source and the stream.
A source with fixed object shapes (a vendor API) holds the same rows under its own names
and says how in the :class:`ContractTable`. The inherited tests then check what every
caller of a source relies on, whatever the table's shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
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
    """The contract rows as one source holds them.

    A SQL or file source holds :data:`CONTRACT_COLUMNS` as they are and needs only ``source`` and ``stream``.
    An API whose objects have fixed names (a text ``Id``, a ``SystemModstamp``, an ``updated``) names its
    columns in ``columns`` (contract name → the source's) and says in ``row`` how one contract row reads
    back from it (the key it was stored under, extra columns the vendor always adds, a number the vendor
    only has as a float). ``skip`` names the tests that cannot apply to the source, each with the reason.
    """

    source: Source
    stream: str
    columns: Mapping[str, str] = field(default_factory=dict)
    row: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    skip: Mapping[str, str] = field(default_factory=dict)

    def column(self, contract_name: str) -> str:
        return self.columns.get(contract_name, contract_name)

    @property
    def key(self) -> str:
        return self.column("id")

    @property
    def cursor(self) -> str:
        return self.column("updated_at")

    def expected(self, contract_row: dict[str, Any]) -> dict[str, Any]:
        """``contract_row`` as a read returns it."""
        if self.row is not None:
            return {k: normalise(v) for k, v in self.row(contract_row).items()}
        return {self.column(k): v for k, v in contract_row.items()}

    def keys(self, contract_ids: Iterable[int]) -> list[Any]:
        """The source's keys of the contract rows with these ids, sorted."""
        by_id = {r["id"]: r for r in CONTRACT_ROWS}
        return sorted(self.expected(by_id[i])[self.key] for i in contract_ids)

    def keys_read(self, rows: Iterable[dict[str, Any]]) -> list[Any]:
        return sorted(r[self.key] for r in rows)


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
    """Inherit, override ``contract_table``; every test here must pass, except one the table's ``skip``
    names with the reason it cannot apply to that source."""

    @pytest.fixture
    def contract_table(self) -> ContractTable:
        raise NotImplementedError("override the contract_table fixture")

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def spec(t: ContractTable, mode: SyncMode = SyncMode.FULL_REFRESH, **extra: Any) -> StreamSpec:
        cursor = None if mode is SyncMode.FULL_REFRESH else t.cursor
        return StreamSpec(name=t.stream, sync_mode=mode, cursor_field=cursor, primary_key=[t.key], **extra)

    @staticmethod
    def state(t: ContractTable, value: Any) -> StreamState:
        return StreamState(cursor_field=t.cursor, cursor_value=value)

    @staticmethod
    def boundary(t: ContractTable) -> Any:
        """The boundary cursor as the writer would hand it back: typed like the column."""
        typ = t.source.arrow_schema(SourceContract.spec(t)).field(t.cursor).type
        value = CONTRACT_ROWS[2]["updated_at"]
        return value.replace(tzinfo=UTC) if typ.tz else value

    @staticmethod
    def unless_skipped(t: ContractTable, test: str) -> None:
        if test in t.skip:
            pytest.skip(t.skip[test])

    # -- check and discover ------------------------------------------------

    def test_check_accepts_a_working_configuration(self, contract_table: ContractTable) -> None:
        contract_table.source.check()

    def test_discover_finds_the_table_with_its_key_and_types(self, contract_table: ContractTable) -> None:
        t = contract_table
        info = t.source.discover().stream(t.stream)
        assert info is not None, f"{t.stream} missing from the catalog"
        assert info.primary_key == [t.key]
        types = {c.name: c.type for c in info.columns}
        assert set(types) >= {t.column(c) for c in CONTRACT_COLUMNS}
        if isinstance(t.keys([1])[0], int):
            assert pa.types.is_integer(pa.type_for_alias(types[t.key]))
        else:
            assert types[t.key] == "string", f"{t.key} is {types[t.key]}, not the text its values are"
        assert types[t.column("name")] == "string"
        assert types[t.cursor].startswith("timestamp[us")
        assert t.cursor in info.cursor_candidates
        assert t.column("name") not in info.cursor_candidates

    def test_discover_types_amount_as_an_exact_decimal(self, contract_table: ContractTable) -> None:
        self.unless_skipped(contract_table, "test_discover_types_amount_as_an_exact_decimal")
        info = contract_table.source.discover().stream(contract_table.stream)
        assert info is not None, f"{contract_table.stream} missing from the catalog"
        amount_type = {c.name: c.type for c in info.columns}[contract_table.column("amount")]
        # Exact decimal, wide enough for the rows: SQL declares (10, 2); an API without
        # precision in its metadata picks a wider one, which holds the same values.
        amount = re.fullmatch(r"decimal128\((\d+), (\d+)\)", amount_type)
        assert amount is not None, f"amount is {amount_type}, not a decimal"
        precision, scale = int(amount[1]), int(amount[2])
        assert scale >= 2, f"amount is {amount_type}, fewer fractional digits than decimal(10, 2)"
        assert precision - scale >= 8, f"amount is {amount_type}, fewer integer digits than decimal(10, 2)"

    def test_discover_offers_the_key_as_a_cursor(self, contract_table: ContractTable) -> None:
        self.unless_skipped(contract_table, "test_discover_offers_the_key_as_a_cursor")
        info = contract_table.source.discover().stream(contract_table.stream)
        assert info is not None, f"{contract_table.stream} missing from the catalog"
        assert contract_table.key in info.cursor_candidates

    # -- full refresh --------------------------------------------------------

    def test_full_refresh_reads_every_row_as_declared(self, contract_table: ContractTable) -> None:
        t = contract_table
        spec = self.spec(t)
        schema = t.source.arrow_schema(spec)
        batches = list(t.source.read(spec, None))
        assert batches, "a table with rows produced no batch"
        for batch in batches:
            assert batch.schema.equals(schema), f"batch schema {batch.schema} != arrow_schema {schema}"
        rows = sorted(rows_of(batches), key=lambda r: r[t.key])
        assert rows == sorted((t.expected(r) for r in CONTRACT_ROWS), key=lambda r: r[t.key])

    def test_full_refresh_ignores_a_saved_cursor(self, contract_table: ContractTable) -> None:
        t = contract_table
        rows = rows_of(t.source.read(self.spec(t), self.state(t, self.boundary(t))))
        assert t.keys_read(rows) == t.keys(expected_ids(lambda r: True))

    def test_selected_columns_only(self, contract_table: ContractTable) -> None:
        t = contract_table
        spec = self.spec(t, columns=[t.cursor, t.key])
        assert t.source.arrow_schema(spec).names == [t.cursor, t.key]
        batches = list(t.source.read(spec, None))
        assert all(b.schema.names == [t.cursor, t.key] for b in batches)
        assert t.keys_read(rows_of(batches)) == t.keys(expected_ids(lambda r: True))

    # -- incremental ---------------------------------------------------------

    def test_incremental_without_state_reads_everything_in_cursor_order(self, contract_table: ContractTable) -> None:
        t = contract_table
        rows = rows_of(t.source.read(self.spec(t, SyncMode.INCREMENTAL), None))
        assert t.keys_read(rows) == t.keys(expected_ids(lambda r: True))
        cursors = [r[t.cursor] for r in rows]
        assert cursors == sorted(cursors)

    def test_incremental_reads_from_the_cursor_inclusive(self, contract_table: ContractTable) -> None:
        t = contract_table
        boundary = self.boundary(t)
        rows = rows_of(t.source.read(self.spec(t, SyncMode.INCREMENTAL), self.state(t, boundary)))
        expected = expected_ids(lambda r: r["updated_at"] >= normalise(boundary))
        assert expected == [3, 4, 5, 6]
        assert t.keys_read(rows) == t.keys(expected)

    def test_incremental_append_reads_rows_past_the_cursor(self, contract_table: ContractTable) -> None:
        t = contract_table
        boundary = self.boundary(t)
        rows = rows_of(t.source.read(self.spec(t, SyncMode.INCREMENTAL_APPEND), self.state(t, boundary)))
        expected = expected_ids(lambda r: r["updated_at"] > normalise(boundary))
        assert expected == [5, 6]
        assert t.keys_read(rows) == t.keys(expected)

    def test_incremental_lookback_reads_again_before_the_cursor(self, contract_table: ContractTable) -> None:
        t = contract_table
        boundary = self.boundary(t)
        spec = self.spec(t, SyncMode.INCREMENTAL, lookback=int(timedelta(hours=25).total_seconds()))
        rows = rows_of(t.source.read(spec, self.state(t, boundary)))
        since = normalise(boundary) - timedelta(hours=25)
        expected = expected_ids(lambda r: r["updated_at"] >= since)
        assert expected == [2, 3, 4, 5, 6]
        assert t.keys_read(rows) == t.keys(expected)

    def test_a_cursor_saved_as_json_text_reads_the_same(self, contract_table: ContractTable) -> None:
        t = contract_table
        as_text = json.loads(json.dumps(self.boundary(t).isoformat()))
        spec = self.spec(t, SyncMode.INCREMENTAL_APPEND)
        assert t.keys_read(rows_of(t.source.read(spec, self.state(t, as_text)))) == t.keys([5, 6])

    def test_a_cursor_past_every_row_reads_nothing(self, contract_table: ContractTable) -> None:
        t = contract_table
        late = self.boundary(t) + timedelta(days=365)
        assert rows_of(t.source.read(self.spec(t, SyncMode.INCREMENTAL_APPEND), self.state(t, late))) == []

    # -- errors ----------------------------------------------------------------

    def test_unknown_stream_is_a_config_error(self, contract_table: ContractTable) -> None:
        namespace = contract_table.stream.rsplit(".", 1)[0]
        spec = StreamSpec(name=f"{namespace}.no_such_table_here")
        with pytest.raises(SourceError) as caught:
            list(contract_table.source.read(spec, None))
        assert caught.value.kind is FailureKind.CONFIG
        assert "no_such_table_here" in caught.value.message

    def test_unknown_column_is_a_config_error(self, contract_table: ContractTable) -> None:
        spec = self.spec(contract_table, columns=[contract_table.key, "no_such_column"])
        with pytest.raises(SourceError) as caught:
            list(contract_table.source.read(spec, None))
        assert caught.value.kind is FailureKind.CONFIG
        assert "no_such_column" in caught.value.message
