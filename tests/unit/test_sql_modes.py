"""Which rows each sync mode reads, decided once for every SQL source."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from tidemark.connectors.base import StreamState
from tidemark.connectors.sql.arrow import rows_to_batch
from tidemark.connectors.sql.cursor import coerce_cursor, cursor_bound
from tidemark.connectors.sql.plan import integer_ranges
from tidemark.connectors.sql.source import needs_order
from tidemark.connectors.sql.tables import SqlColumn, SqlTable
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode

pytestmark = pytest.mark.unit

TS = pa.timestamp("us", tz="UTC")
NAIVE = pa.timestamp("us")


def spec(mode: SyncMode, lookback: int | None = None, cursor: str = "c") -> StreamSpec:
    return StreamSpec(name="s.t", sync_mode=mode, cursor_field=cursor, lookback=lookback)


def state(value: object, field: str = "c") -> StreamState:
    return StreamState(cursor_field=field, cursor_value=value)


T0 = datetime(2024, 3, 2, 10, tzinfo=UTC)


def test_full_refresh_reads_everything_whatever_the_state() -> None:
    assert cursor_bound(spec(SyncMode.FULL_REFRESH), state(T0), TS) is None


def test_first_incremental_run_reads_everything() -> None:
    assert cursor_bound(spec(SyncMode.INCREMENTAL), None, TS) is None
    assert cursor_bound(spec(SyncMode.INCREMENTAL_APPEND), state(None), TS) is None


def test_incremental_is_inclusive_and_append_exclusive() -> None:
    assert cursor_bound(spec(SyncMode.INCREMENTAL), state(T0), TS) == (">=", T0)
    assert cursor_bound(spec(SyncMode.INCREMENTAL_APPEND), state(T0), TS) == (">", T0)


def test_lookback_moves_the_incremental_start_back() -> None:
    assert cursor_bound(spec(SyncMode.INCREMENTAL, 90), state(T0), TS) == (">=", datetime(2024, 3, 2, 9, 58, 30,
                                                                                          tzinfo=UTC))
    assert cursor_bound(spec(SyncMode.INCREMENTAL, 10), state(100), pa.int64()) == (">=", 90)
    assert cursor_bound(spec(SyncMode.INCREMENTAL, 2), state("5.50"), pa.decimal128(5, 2)) == (">=", Decimal("3.50"))
    # Dates move back by whole days, rounded up: a lookback never reads less than asked.
    assert cursor_bound(spec(SyncMode.INCREMENTAL, 3600), state("2024-03-02"), pa.date32()) == (">=",
                                                                                              date(2024, 3, 1))


def test_append_ignores_lookback_so_no_row_is_appended_twice() -> None:
    assert cursor_bound(spec(SyncMode.INCREMENTAL_APPEND, 3600), state(T0), TS) == (">", T0)


def test_lookback_on_a_text_cursor_is_a_config_error() -> None:
    with pytest.raises(SourceError) as caught:
        cursor_bound(spec(SyncMode.INCREMENTAL, 5), state("m"), pa.string())
    assert caught.value.kind is FailureKind.CONFIG


def test_a_changed_cursor_rereads_for_incremental_but_refuses_append() -> None:
    assert cursor_bound(spec(SyncMode.INCREMENTAL), state(T0, field="old"), TS) is None
    with pytest.raises(SourceError) as caught:
        cursor_bound(spec(SyncMode.INCREMENTAL_APPEND), state(T0, field="old"), TS)
    assert caught.value.kind is FailureKind.CONFIG
    assert "resync" in caught.value.message


@pytest.mark.parametrize(("value", "typ", "expected"), [
    ("2024-03-02T10:00:00Z", TS, T0),
    ("2024-03-02T12:00:00+02:00", NAIVE, datetime(2024, 3, 2, 10)),
    (datetime(2024, 3, 2, 10), TS, T0),
    ("2024-03-02", pa.date32(), date(2024, 3, 2)),
    ("42", pa.int32(), 42),
    (Decimal("7"), pa.int64(), 7),
    (1.25, pa.decimal128(5, 2), Decimal("1.25")),
])
def test_saved_cursors_come_back_in_the_column_type(value: object, typ: pa.DataType, expected: object) -> None:
    assert coerce_cursor(value, typ) == expected


def test_a_corrupt_saved_cursor_is_a_config_error() -> None:
    with pytest.raises(SourceError) as caught:
        coerce_cursor("yesterday", TS)
    assert caught.value.kind is FailureKind.CONFIG
    with pytest.raises(SourceError):
        coerce_cursor("1.5", pa.int64())


def test_integer_ranges_cover_the_keys_with_open_ends() -> None:
    ranges = integer_ranges("id", 1, 100, 4)
    assert [(r.lower, r.upper) for r in ranges] == [(None, "26"), ("26", "51"), ("51", "76"), ("76", None)]
    assert [(r.lower, r.upper) for r in integer_ranges("id", 5, 5, 4)] == [(None, None)]


def test_rows_to_batch_converts_and_reports_the_bad_column() -> None:
    schema = pa.schema([("ts", TS), ("n", pa.decimal128(5, 2)), ("s", pa.string())])
    from tidemark.connectors.sql.arrow import default_converter

    converters = [default_converter(f.type) for f in schema]
    batch = rows_to_batch([(T0, Decimal("NaN"), b"x"), (None, Decimal("1.50"), 5)], schema, converters, "s.t")
    assert batch.to_pylist() == [{"ts": T0, "n": None, "s": "x"}, {"ts": None, "n": Decimal("1.50"), "s": "5"}]
    with pytest.raises(SourceError) as caught:
        rows_to_batch([(T0, Decimal("123456"), "x")], schema, converters, "s.t")
    assert caught.value.kind is FailureKind.TERMINAL
    assert "column 'n'" in caught.value.message


def _table(key: tuple[str, ...]) -> SqlTable:
    columns = tuple(SqlColumn(n, "bigint", pa.int64()) for n in ("id", "region", "c"))
    return SqlTable("s", "t", columns, primary_key=key)


def test_reads_are_unordered_unless_a_merge_may_see_a_key_twice() -> None:
    keyed = _table(("id",))
    # State is the largest cursor of the run, committed once: order buys nothing here.
    assert not needs_order(StreamSpec(name="s.t", sync_mode=SyncMode.FULL_REFRESH), keyed)
    assert not needs_order(spec(SyncMode.INCREMENTAL_APPEND), keyed)
    merge = StreamSpec(name="s.t", sync_mode=SyncMode.INCREMENTAL, cursor_field="c", primary_key=["id"])
    assert not needs_order(merge, keyed)
    assert not needs_order(merge.model_copy(update={"primary_key": ["id", "region"]}), keyed)
    # A key that can repeat within one read (a view, a key narrower than the table's): the newest must win.
    assert needs_order(merge.model_copy(update={"primary_key": ["region"]}), keyed)
    assert needs_order(merge, _table(()))
