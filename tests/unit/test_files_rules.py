"""The file sources' documented rules, without a store: globs, type widening, conforming a file's
batch to the stream's schema, and the ledger's round trip through the snapshot summary's JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from tidemark.connectors.files.ledger import Ledger
from tidemark.connectors.files.listing import FileEntry, matches
from tidemark.connectors.files.schema import conform, merge, widen
from tidemark.errors import FailureKind, SourceError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("pattern", "path", "hit"), [
    ("*.csv", "a.csv", True),
    ("*.csv", "dir/a.csv", False),  # `*` stays in one folder
    ("**/*.csv", "a.csv", True),  # `**/` may be no folder at all
    ("**/*.csv", "x/y/z/a.csv", True),
    ("orders/**/*.csv*", "orders/2024/01/a.csv.gz", True),
    ("orders/**/*.csv*", "orders/readme.txt", False),
    ("orders/**", "orders/a/b", True),
    ("data-?.jsonl", "data-1.jsonl", True),
    ("data-?.jsonl", "data-10.jsonl", False),
    ("part-[0-4].parquet", "part-3.parquet", True),
    ("part-[!0-4].parquet", "part-3.parquet", False),
    ("a+b(1).csv", "a+b(1).csv", True),  # regex characters are literal
])
def test_globs(pattern: str, path: str, hit: bool) -> None:
    assert matches(pattern, path) is hit


@pytest.mark.parametrize(("a", "b", "wide"), [
    (pa.int32(), pa.int64(), pa.int64()),
    (pa.uint32(), pa.int64(), pa.int64()),
    (pa.uint64(), pa.int8(), pa.int64()),
    (pa.int64(), pa.float32(), pa.float64()),
    (pa.decimal128(6, 2), pa.decimal128(12, 1), pa.decimal128(13, 2)),
    (pa.int64(), pa.decimal128(10, 2), pa.decimal128(21, 2)),
    (pa.decimal128(38, 0), pa.decimal128(38, 10), pa.decimal128(38, 10)),
    (pa.date32(), pa.timestamp("s"), pa.timestamp("s")),
    (pa.timestamp("ms"), pa.timestamp("us", tz="UTC"), pa.timestamp("us", tz="UTC")),
    (pa.timestamp("s", tz="Europe/Paris"), pa.timestamp("s", tz="UTC"), pa.timestamp("s", tz="UTC")),
    (pa.null(), pa.bool_(), pa.bool_()),
    (pa.int64(), pa.string(), pa.string()),
    (pa.bool_(), pa.int64(), pa.string()),
    (pa.list_(pa.int32()), pa.list_(pa.float64()), pa.list_(pa.float64())),
    (pa.struct([("a", pa.int32())]), pa.struct([("b", pa.string())]),
     pa.struct([("a", pa.int32()), ("b", pa.string())])),
])
def test_widening_rules(a: pa.DataType, b: pa.DataType, wide: pa.DataType) -> None:
    assert widen(a, b) == wide
    reverse = widen(b, a)
    if pa.types.is_struct(wide):  # fields in first-seen order, so only their set is symmetric
        assert sorted(reverse, key=lambda f: f.name) == sorted(wide, key=lambda f: f.name)
    else:
        assert reverse == wide


def test_merge_keeps_first_seen_order_and_settles_all_null_columns_as_text() -> None:
    merged = merge([pa.schema([("id", pa.int32()), ("gone", pa.null())]),
                    pa.schema([("new", pa.large_string()), ("id", pa.int64())])])
    assert merged == pa.schema([("id", pa.int64()), ("gone", pa.string()), ("new", pa.string())])


def test_conform_fills_missing_columns_with_null_and_reports_extra_ones() -> None:
    schema = pa.schema([("id", pa.int64()), ("amount", pa.string()), ("note", pa.string())])
    batch = pa.record_batch({"amount": pa.array([1.5, None]), "id": pa.array([1, 2], pa.int32()),
                             "surprise": pa.array([True, False])})
    conformed, extra = conform(batch, schema)
    assert conformed.schema == schema
    assert conformed.to_pylist() == [{"id": 1, "amount": "1.5", "note": None}, {"id": 2, "amount": None, "note": None}]
    assert extra == ["surprise"]


def test_conform_refuses_a_value_that_does_not_fit() -> None:
    with pytest.raises(pa.ArrowInvalid):
        conform(pa.record_batch({"id": pa.array(["seven"])}), pa.schema([("id", pa.int64())]))


def entry(key: str, second: int, size: int = 10) -> FileEntry:
    return FileEntry(key=key, path=f"bucket/{key}", size=size, modified=datetime(2024, 1, 1, 0, 0, second, tzinfo=UTC))


def test_the_ledger_survives_the_summary_json_and_knows_each_file() -> None:
    ledger = Ledger()
    ledger.record(entry("a.csv", 1), "sha-a")
    ledger.record(entry("b.csv", 1), "sha-b")
    stored = json.loads(json.dumps(ledger.encode()))  # as the snapshot summary keeps it
    assert stored["modified_at"] == "2024-01-01T00:00:01+00:00"
    back = Ledger.decode(stored, "orders")
    assert back == ledger
    assert back.unchanged(entry("a.csv", 1))
    assert not back.unchanged(entry("a.csv", 2))  # touched: look at the content
    assert back.same_content(entry("a.csv", 2), "sha-a")  # re-uploaded unchanged
    assert not back.same_content(entry("a.csv", 2), "sha-new")
    assert not back.unchanged(entry("c.csv", 1))  # new, even with a tied time


def test_a_state_that_is_no_ledger_asks_for_a_resync() -> None:
    with pytest.raises(SourceError, match="resync") as caught:
        Ledger.decode("2024-01-01T00:00:00", "orders")
    assert caught.value.kind is FailureKind.CONFIG
