"""The S3 file source against moto's server: contract, formats, nested prefixes, schema widening,
bad files, and incremental reads with the ledger of files read (through the writer, so the ledger
is what the Iceberg snapshot committed)."""

from __future__ import annotations

import gzip
import io
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tests.integration.files_fixtures import Bucket, parquet_bytes
from tidemark.connectors import get_connector
from tidemark.connectors.files.s3 import S3Source
from tidemark.errors import FailureKind, SourceError
from tidemark.events import DestinationSpec, StreamSpec, SyncMode
from tidemark.lakehouse import Lakehouse
from tidemark_ingest.worker.load import Progress, load_stream
from tidemark_testing.connector_contract import CONTRACT_ROWS, ContractTable, SourceContract, rows_of

pytestmark = pytest.mark.integration

CSV = {"name": "orders", "glob": "orders/**/*.csv*", "format": "csv"}


@pytest.fixture
def bucket(moto_endpoint: str, s3_bucket: str) -> Bucket:
    return Bucket(moto_endpoint, s3_bucket)


def rows(source: S3Source, name: str, **spec: Any) -> list[dict[str, Any]]:
    return rows_of(source.read(StreamSpec(name=name, **spec), None))


class TestS3Contract(SourceContract):
    @pytest.fixture
    def contract_table(self, bucket: Bucket) -> ContractTable:
        schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.decimal128(10, 2)),
                            ("updated_at", pa.timestamp("us"))])
        # Two files, so the contract's rows cross a file boundary.
        for part, chunk in enumerate((CONTRACT_ROWS[:3], CONTRACT_ROWS[3:])):
            bucket.put(f"in/contract/part-{part}.parquet", parquet_bytes(pa.Table.from_pylist(chunk, schema)))
        source = bucket.source([{"name": "contract", "glob": "contract/*.parquet", "format": "parquet",
                                 "primary_key": ["id"]}], prefix="in", file_columns=False)
        return ContractTable(source=source, stream="contract")


def test_registered_with_a_config_schema_whose_secrets_are_write_only() -> None:
    assert get_connector("s3") is S3Source
    assert set(S3Source.config_model.secret_fields()) == {"secret_access_key", "session_token"}


def test_nested_prefixes_compression_and_widening(bucket: Bucket) -> None:
    bucket.put("data/orders/2024/01/a.csv", "id,amount,note\n1,10,first\n2,11,\n")
    bucket.put("data/orders/2024/02/b.csv.gz", gzip.compress(b"id,amount,extra\n3,12.5,x\n"))
    bucket.put("data/orders/2025/c.csv.zst", zstandard.ZstdCompressor().compress(b"id,amount\n4,oops\n"))
    bucket.put("data/orders/readme.txt", "not a csv: the glob leaves it out")
    bucket.put("data/other/d.csv", "id\n99\n")
    source = bucket.source([CSV], prefix="data")
    info = source.discover().stream("orders")
    assert info is not None
    # int with float widens to float64, then with text to string; a column missing in a file is null there.
    assert [(c.name, c.type) for c in info.columns] == [
        ("id", "int64"), ("amount", "string"), ("note", "string"), ("extra", "string"),
        ("_file", "string"), ("_file_modified_at", "timestamp[us, tz=UTC]")]
    assert info.cursor_candidates == ["id", "_file_modified_at"]
    got = sorted(rows(source, "orders"), key=lambda r: r["id"])
    assert [(r["id"], r["amount"], r["note"], r["extra"], r["_file"]) for r in got] == [
        (1, "10", "first", None, "data/orders/2024/01/a.csv"), (2, "11", None, None, "data/orders/2024/01/a.csv"),
        (3, "12.5", None, "x", "data/orders/2024/02/b.csv.gz"), (4, "oops", None, None, "data/orders/2025/c.csv.zst")]


def test_csv_options(bucket: Bucket) -> None:
    bucket.put("semi/a.csv", b"1;'a;b';2024-03-01\n2;'c''d';2024-03-02\n")
    bucket.put("latin/a.csv", "id|name\n1|Zoë\n".encode("latin-1"))
    source = bucket.source([
        {"name": "semi", "glob": "semi/*.csv", "format": "csv",
         "csv": {"delimiter": ";", "quote_char": "'", "header": False, "column_names": ["id", "label", "day"]}},
        {"name": "latin", "glob": "latin/*.csv", "format": "csv", "csv": {"delimiter": "|", "encoding": "latin-1"}},
    ], file_columns=False)
    assert source.arrow_schema(StreamSpec(name="semi")).types == [pa.int64(), pa.string(), pa.date32()]
    assert rows(source, "semi") == [{"id": 1, "label": "a;b", "day": datetime(2024, 3, 1).date()},
                                    {"id": 2, "label": "c'd", "day": datetime(2024, 3, 2).date()}]
    assert rows(source, "latin") == [{"id": 1, "name": "Zoë"}]


def test_json_lines_and_parquet(bucket: Bucket) -> None:
    bucket.put("j/1.jsonl", '{"id": 1, "tags": ["a"], "who": {"n": "x"}}\n{"id": 2, "who": {"n": "y", "age": 3}}\n')
    bucket.put("j/2.jsonl.gz", gzip.compress(b'{"id": 3.5, "extra": true}\n'))
    table = pa.table({"id": pa.array([1, 2], pa.int32()), "amount": pa.array([Decimal("1.25"), None],
                                                                                pa.decimal128(6, 2))})
    bucket.put("p/1.parquet", parquet_bytes(table))
    bucket.put("p/2.parquet", parquet_bytes(pa.table({"id": pa.array([3], pa.int64()),
                                                      "amount": pa.array([Decimal("100.5")], pa.decimal128(12, 1))})))
    source = bucket.source([{"name": "j", "glob": "j/*", "format": "jsonl"},
                            {"name": "p", "glob": "p/*.parquet", "format": "parquet"}], file_columns=False)
    schema = source.arrow_schema(StreamSpec(name="j"))
    assert schema.field("id").type == pa.float64()
    assert schema.field("who").type == pa.struct([("n", pa.string()), ("age", pa.int64())])
    assert rows(source, "j") == [
        {"id": 1.0, "tags": ["a"], "who": {"n": "x", "age": None}, "extra": None},
        {"id": 2.0, "tags": None, "who": {"n": "y", "age": 3}, "extra": None},
        {"id": 3.5, "tags": None, "who": None, "extra": True}]
    # Footers only: int32 and int64 make int64, decimal(6,2) and decimal(12,1) make decimal(13,2).
    assert source.arrow_schema(StreamSpec(name="p")).types == [pa.int64(), pa.decimal128(13, 2)]
    assert rows(source, "p") == [{"id": 1, "amount": Decimal("1.25")}, {"id": 2, "amount": None},
                                 {"id": 3, "amount": Decimal("100.50")}]


def test_batches_are_bounded(bucket: Bucket) -> None:
    table = pa.table({"id": pa.array(range(10_000), pa.int64())})
    bucket.put("big/1.parquet", parquet_bytes(table, row_group_size=3000))
    bucket.put("big/2.csv", "id\n" + "".join(f"{i}\n" for i in range(10_000)))
    source = bucket.source([{"name": "p", "glob": "big/*.parquet", "format": "parquet"},
                            {"name": "c", "glob": "big/*.csv", "format": "csv"}], batch_size=1000)
    for name in ("p", "c"):
        batches = list(source.read(StreamSpec(name=name), None))
        assert max(b.num_rows for b in batches) <= 1000
        assert sum(b.num_rows for b in batches) == 10_000


# -- bad input --------------------------------------------------------------------------------------------


def read_error(source: S3Source, name: str) -> SourceError:
    with pytest.raises(SourceError) as caught:
        list(source.read(StreamSpec(name=name), None))
    return caught.value


def test_malformed_files_are_named_with_their_line_or_row_group(bucket: Bucket) -> None:
    good = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(1, 6))
    bucket.put("csv/a.csv", good)
    bucket.put("csv/b.csv", good + "6,x,unexpected\n7,y\n")
    bucket.put("num/a.csv", "id\n1\n2\n")
    bucket.put("num/b.csv", "id\n" + "".join(f"{i}\n" for i in range(400)) + "three\n")
    bucket.put("json/a.jsonl", '{"id": 1}\n{"id": 2}\n{"id": \n{"id": 4}\n')
    whole = bytearray(parquet_bytes(pa.table({"id": list(range(100))}), row_group_size=10))
    chunk = pq.ParquetFile(io.BytesIO(whole)).metadata.row_group(2).column(0)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    whole[start:start + 16] = b"\xff" * 16  # row group 2's first page header: garbage
    bucket.put("pq/a.parquet", bytes(whole))
    bucket.put("pq/b.parquet", b"PAR1 this is no parquet file")
    def source(name: str, fmt: str) -> S3Source:
        return bucket.source([{"name": name, "glob": f"{name}/*", "format": fmt}], sample_bytes=1024)

    error = read_error(source("csv", "csv"), "csv")
    assert error.kind is FailureKind.TERMINAL
    assert "file csv/b.csv, line 7: Expected 2 columns, got 3" in error.message
    assert "on_bad_file: skip" in error.message
    # Both files sample as integers (the sample is their first KiB); `three` is a bad value on line 402.
    assert "file num/b.csv, line 402: In CSV column #0: CSV conversion error to int64: invalid value 'three'" in (
        read_error(source("num", "csv"), "num").message)
    assert "file json/a.jsonl, line 3" in read_error(source("json", "jsonl"), "json").message
    damaged = bucket.source([{"name": "pq", "glob": "pq/a.parquet", "format": "parquet"}])
    assert "file pq/a.parquet, row group 2: cannot decode it" in read_error(damaged, "pq").message
    broken = bucket.source([{"name": "pq", "glob": "pq/b.parquet", "format": "parquet"}])
    with pytest.raises(SourceError, match=r"file pq/b.parquet: not a readable Parquet file"):
        broken.discover()


def test_non_utf8_text_is_an_error_naming_the_file(bucket: Bucket) -> None:
    bucket.put("t/a.csv", b"id,name\n1,ok\n2,Zo\xeb\n")
    bucket.put("j/a.jsonl", b'{"name": "ok"}\n{"name": "Zo\xeb"}\n')
    for name, key, fmt, line in (("t", "t/a.csv", "csv", 3), ("j", "j/a.jsonl", "jsonl", 2)):
        source = bucket.source([{"name": name, "glob": f"{name}/*", "format": fmt}])
        with pytest.raises(SourceError) as caught:
            source.discover()
        assert f"file {key}, line {line}: not valid UTF-8" in caught.value.message


def test_non_utf8_in_json_past_the_sample_and_in_parquet_strings_is_an_error(bucket: Bucket) -> None:
    bucket.put("j/a.jsonl", b"".join(b'{"name": "n%d"}\n' % i for i in range(200)) + b'{"name": "Zo\xeb"}\n')
    invalid = pa.array([b"ok", b"Zo\xeb"], pa.binary())
    strings = pa.Array.from_buffers(pa.string(), len(invalid), invalid.buffers())  # as a careless writer does
    bucket.put("p/a.parquet", parquet_bytes(pa.table({"id": [1, 2], "name": strings})))
    jsonl = bucket.source([{"name": "j", "glob": "j/*", "format": "jsonl"}], sample_bytes=1024)
    assert "file j/a.jsonl, line 201: not valid UTF-8" in read_error(jsonl, "j").message
    parquet = bucket.source([{"name": "p", "glob": "p/*", "format": "parquet"}])
    message = read_error(parquet, "p").message
    assert "file p/a.parquet, row group 0: column 'name' holds text that is not valid UTF-8" in message
    assert "Zo" not in message


def test_non_utf8_past_the_sample_is_an_error_too(bucket: Bucket) -> None:
    body = b"id,name\n" + b"".join(b"%d,name%d\n" % (i, i) for i in range(1, 2000)) + b"2000,Zo\xeb\n"
    bucket.put("t/a.csv", body)
    source = bucket.source([{"name": "t", "glob": "t/*", "format": "csv"}], sample_bytes=1024)
    error = read_error(source, "t")
    assert "file t/a.csv, line 2001: not valid UTF-8" in error.message
    assert "Zo" not in error.message


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_non_utf8_mid_run_fails_the_stream_and_writes_nothing(bucket: Bucket, lake: Lakehouse, fmt: str) -> None:
    def line(i: int, name: bytes) -> bytes:
        return b"%d,%s\n" % (i, name) if fmt == "csv" else b'{"id": %d, "name": "%s"}\n' % (i, name)

    header = b"id,name\n" if fmt == "csv" else b""
    bucket.put(f"{fmt}/1.{fmt}", header + line(1, b"one") + line(2, b"two"))
    source = bucket.source([{"name": fmt, "glob": f"{fmt}/*", "format": fmt}], sample_bytes=1024, batch_size=100)
    for mode in (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL_APPEND):
        dest = DestinationSpec(namespace=f"utf8_{mode.value}")
        spec = StreamSpec(name=fmt, sync_mode=mode,
                          cursor_field="_file_modified_at" if mode is SyncMode.INCREMENTAL_APPEND else None)
        first = load_stream(lake, source, dest, spec, "run-1", Progress())
        assert first.status == "succeeded", first.error
        before = lake.catalog.load_table(first.table).current_snapshot()
        # A good file, then one whose bad byte comes after thousands of good rows (many batches in).
        bucket.put(f"{fmt}/2.{fmt}", header + b"".join(line(i, b"ok") for i in range(3, 5000)))
        bad = header + b"".join(line(i, b"ok") for i in range(5000, 9000)) + line(9000, b"Zo\xeb")
        bucket.put(f"{fmt}/3.{fmt}", bad)
        failed = load_stream(lake, source, dest, spec, "run-2", Progress())
        assert failed.status == "failed"
        assert failed.error is not None
        assert f"file {fmt}/3.{fmt}" in failed.error.message
        assert "not valid UTF-8" in failed.error.message
        table = lake.catalog.load_table(first.table)
        assert table.current_snapshot() == before
        assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2]
        bucket.delete(f"{fmt}/2.{fmt}")
        bucket.delete(f"{fmt}/3.{fmt}")


def test_skipping_bad_files_reports_each_as_a_warning(bucket: Bucket, lake: Lakehouse) -> None:
    bucket.put("csv/a.csv", "id,name\n1,a\n2,b\n")
    bucket.put("csv/b.csv", "id,name\n3,c\n4,d,extra\n")
    bucket.put("csv/c.csv", b"id,name\n5,\xff\n")
    bucket.put("csv/d.csv", "id,name\n6,f\n")
    source = bucket.source([{"name": "csv", "glob": "csv/*.csv", "format": "csv"}], on_bad_file="skip",
                           sample_files=1)
    stats = load_stream(lake, source, DestinationSpec(namespace="skip"), StreamSpec(name="csv"), "run-1", Progress())
    assert stats.status == "succeeded", stats.error
    # No row of a skipped file is loaded, not even those before its bad line.
    loaded = lake.catalog.load_table(stats.table).scan().to_arrow()
    assert sorted(loaded.column("id").to_pylist()) == [1, 2, 6]
    warned = sorted((w.kind, w.message) for w in stats.warnings)
    assert [k for k, _ in warned] == ["file_skipped", "file_skipped"]
    assert "skipped file csv/b.csv, line 3: Expected 2 columns, got 3" in warned[0][1]
    assert "skipped file csv/c.csv, line 2: not valid UTF-8" in warned[1][1]


def test_check_and_errors_say_what_to_fix(bucket: Bucket, lake: Lakehouse) -> None:
    bucket.source([CSV]).check()
    missing = bucket.source([CSV], bucket="no-such-bucket-here")
    with pytest.raises(SourceError, match="does not exist") as caught:
        missing.check()
    assert caught.value.kind is FailureKind.CONFIG
    # A run fails the same way: the store lists a missing bucket as empty, never "no files yet, 0 rows".
    stats = load_stream(lake, missing, DestinationSpec(namespace="gone"), StreamSpec(name="orders"), "run-1",
                        Progress())
    assert stats.status == "failed"
    assert stats.error is not None
    assert "does not exist" in stats.error.message
    unreachable = bucket.source([CSV], endpoint="http://127.0.0.1:9")
    with pytest.raises(SourceError, match="cannot reach the store") as caught:
        unreachable.check()
    assert caught.value.kind is FailureKind.TRANSIENT


# -- incremental append with the ledger -----------------------------------------------------------------------


def append(source: S3Source, lake: Lakehouse, run: str, stream: str = "orders") -> list[tuple[int, str]]:
    """One incremental_append run through the worker's path; the ids and files it loaded."""
    spec = StreamSpec(name=stream, sync_mode=SyncMode.INCREMENTAL_APPEND, cursor_field="_file_modified_at")
    stats = load_stream(lake, source, DestinationSpec(namespace="inc"), spec, run, Progress())
    assert stats.status == "succeeded", stats.error
    table = lake.catalog.load_table(stats.table)
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None or snapshot.summary.additional_properties.get(
            "tidemark.run-id") != run:
        return []
    new = table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
    if snapshot.parent_snapshot_id is not None:
        old = {(r["id"], r["_file"]) for r in table.scan(snapshot_id=snapshot.parent_snapshot_id).to_arrow()
               .select(["id", "_file"]).to_pylist()}
    else:
        old = set()
    return sorted((r["id"], r["_file"]) for r in new.select(["id", "_file"]).to_pylist()
                  if (r["id"], r["_file"]) not in old)


def test_incremental_append_reads_each_file_exactly_once(bucket: Bucket, lake: Lakehouse) -> None:
    def source() -> S3Source:
        return bucket.source([CSV])  # a new source per run, as each run is a new worker

    bucket.put("orders/a.csv", "id\n1\n")
    bucket.put("orders/b.csv", "id\n2\n")  # the same second as a.csv: tied timestamps
    assert append(source(), lake, "run-1") == [(1, "orders/a.csv"), (2, "orders/b.csv")]
    assert append(source(), lake, "run-2") == []

    # A file added with the same modification time as files already read is still read, once.
    bucket.put("orders/c.csv", "id\n3\n")
    assert append(source(), lake, "run-3") == [(3, "orders/c.csv")]

    # Replaced with new content: read again. Uploaded again unchanged (new time, same bytes): not read.
    time.sleep(1.1)
    bucket.put("orders/a.csv", "id\n10\n11\n")
    bucket.put("orders/b.csv", "id\n2\n")
    assert append(source(), lake, "run-4") == [(10, "orders/a.csv"), (11, "orders/a.csv")]
    assert append(source(), lake, "run-5") == []
    table = lake.catalog.load_table("inc.orders")
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2, 3, 10, 11]


def test_a_full_refresh_resync_commits_the_ledger_too(bucket: Bucket, lake: Lakehouse) -> None:
    bucket.put("orders/a.csv", "id\n1\n")
    spec = StreamSpec(name="orders", sync_mode=SyncMode.INCREMENTAL_APPEND, cursor_field="_file_modified_at")
    stats = load_stream(lake, bucket.source([CSV]), DestinationSpec(namespace="inc"), spec, "resync",
                        Progress(), resync=True)
    assert stats.status == "succeeded", stats.error
    assert append(bucket.source([CSV]), lake, "after") == []
    state = lake.read_state(DestinationSpec(namespace="inc"), "inc.orders")
    assert state is not None
    assert state.cursor_field == "_file_modified_at"
    assert state.cursor_value["ledger"] == 1
    assert datetime.fromisoformat(state.cursor_value["modified_at"]) <= datetime.now(UTC)


def test_a_data_column_cursor_filters_rows_of_every_file(bucket: Bucket) -> None:
    bucket.put("orders/a.csv", "id,day\n1,2024-01-01\n2,2024-01-03\n")
    bucket.put("orders/b.csv", "id,day\n3,2024-01-02\n4,2024-01-04\n")
    from tidemark.connectors.base import StreamState
    source = bucket.source([CSV], file_columns=False)
    spec = StreamSpec(name="orders", sync_mode=SyncMode.INCREMENTAL_APPEND, cursor_field="day")
    got = rows_of(source.read(spec, StreamState(cursor_field="day", cursor_value="2024-01-02")))
    assert sorted(r["id"] for r in got) == [2, 4]


def test_incremental_merge_by_file_replaces_rows_of_a_replaced_file(bucket: Bucket, lake: Lakehouse) -> None:
    stream = {**CSV, "primary_key": ["id"]}
    spec = StreamSpec(name="orders", sync_mode=SyncMode.INCREMENTAL, cursor_field="_file_modified_at",
                      primary_key=["id"])

    def run(run_id: str) -> list[tuple[int, str]]:
        stats = load_stream(lake, bucket.source([stream]), DestinationSpec(namespace="merge"), spec, run_id,
                            Progress())
        assert stats.status == "succeeded", stats.error
        table = lake.catalog.load_table(stats.table).scan().to_arrow()
        return sorted((r["id"], r["status"]) for r in table.to_pylist())

    bucket.put("orders/a.csv", "id,status\n1,new\n2,new\n")
    assert run("m1") == [(1, "new"), (2, "new")]
    time.sleep(1.1)
    bucket.put("orders/a.csv", "id,status\n1,paid\n2,new\n")
    bucket.put("orders/b.csv", "id,status\n3,new\n")
    assert run("m2") == [(1, "paid"), (2, "new"), (3, "new")]
    state = lake.read_state(DestinationSpec(namespace="merge"), "merge.orders")
    assert state is not None
    assert state.cursor_value["ledger"] == 1


def test_columns_beyond_the_sample_are_a_warning_until_discover_sees_them(bucket: Bucket, lake: Lakehouse) -> None:
    bucket.put("orders/a.csv", "id,extra\n1,x\n")
    time.sleep(1.1)
    bucket.put("orders/b.csv", "id\n2\n")
    source = bucket.source([CSV], sample_files=1)  # only the newest file: `extra` is unknown
    assert source.arrow_schema(StreamSpec(name="orders")).names == ["id", "_file", "_file_modified_at"]
    stats = load_stream(lake, source, DestinationSpec(namespace="cols"), StreamSpec(name="orders"), "c1", Progress())
    assert stats.status == "succeeded", stats.error
    assert [(w.kind, w.count) for w in stats.warnings] == [("columns_ignored", 0)]
    assert "['extra']" in stats.warnings[0].message
    assert bucket.source([CSV], sample_files=2).arrow_schema(StreamSpec(name="orders")).names == [
        "id", "extra", "_file", "_file_modified_at"]


def test_parquet_reads_only_the_selected_columns(bucket: Bucket) -> None:
    bucket.put("p/a.parquet", parquet_bytes(pa.table({"id": [1, 2], "wide": ["x" * 10, "y"], "n": [1.5, 2.5]})))
    source = bucket.source([{"name": "p", "glob": "p/*", "format": "parquet"}])
    got = rows_of(source.read(StreamSpec(name="p", columns=["n", "_file", "id"]), None))
    assert got == [{"n": 1.5, "_file": "p/a.parquet", "id": 1}, {"n": 2.5, "_file": "p/a.parquet", "id": 2}]
