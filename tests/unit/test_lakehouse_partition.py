from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from pydantic import ValidationError
from pyiceberg.catalog import Catalog

from tidemark.errors import ConfigError
from tidemark.events import PartitionField, StreamSpec, SyncMode
from tidemark.lakehouse import (
    LakehouseSettings,
    WriteOptions,
    WriteRequest,
    open_catalog,
    write_parquet_stream,
    write_stream,
)
from tidemark_orchestrator import specs as api

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False),
    pa.field("country", pa.string()),
    pa.field("updated_at", pa.timestamp("us", tz="UTC")),
])
TABLE = "shop.orders"


def batch(ids: range | list[int], day: int = 1, month: int = 1) -> pa.RecordBatch:
    ids = list(ids)
    return pa.record_batch([
        pa.array(ids, pa.int64()),
        pa.array([None if i % 7 == 6 else ("NL" if i % 2 else "DE") for i in ids]),
        pa.array([datetime(2026, month, day + i % 3, 10, tzinfo=UTC) for i in ids], pa.timestamp("us", tz="UTC")),
    ], schema=SCHEMA)


def spec(*fields: str) -> list[PartitionField]:
    return [PartitionField(column=c, transform=t) for c, _, t in (f.partition(" ") for f in fields)]


@pytest.fixture
def settings(tmp_path: Path) -> LakehouseSettings:
    return LakehouseSettings().resolve(tmp_path)


@pytest.fixture
def catalog(settings: LakehouseSettings) -> Catalog:
    return open_catalog(settings)


def write(catalog: Catalog, batches: list[pa.RecordBatch], mode: SyncMode, partition: list[PartitionField] | None,
          run_id: str = "run-1") -> None:
    write_stream(catalog, WriteRequest(TABLE, SCHEMA, mode, primary_key=["id"], run_id=run_id,
                                       cursor_field="updated_at", partition=partition), batches,
                 WriteOptions(chunk_bytes=2048))


def rows(catalog: Catalog) -> list[dict[str, object]]:
    return catalog.load_table(TABLE).scan().to_arrow().sort_by("id").to_pylist()


def expected(*batches: pa.RecordBatch) -> list[dict[str, object]]:
    return pa.Table.from_batches(batches).sort_by("id").to_pylist()


def file_dirs(catalog: Catalog) -> set[str]:
    table = catalog.load_table(TABLE)
    return {task.file.file_path.split("/data/", 1)[1].rsplit("/", 1)[0] for task in table.scan().plan_files()}


def test_new_table_gets_the_stream_partition_spec(catalog: Catalog) -> None:
    data = batch(range(40))
    write(catalog, [data], SyncMode.FULL_REFRESH, spec("country identity", "updated_at day", "id bucket[4]"))
    table = catalog.load_table(TABLE)
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [
        ("country", "identity"), ("updated_at_day", "day"), ("id_bucket_4", "bucket[4]"),
    ]
    dirs = [d.split("/") for d in file_dirs(catalog)]
    assert {d[0] for d in dirs} == {"country=NL", "country=DE", "country=null"}
    assert {d[1] for d in dirs} == {"updated_at_day=2026-01-01", "updated_at_day=2026-01-02",
                                    "updated_at_day=2026-01-03"}
    assert {d[2] for d in dirs} <= {f"id_bucket_4={n}" for n in range(4)}
    assert len({d[2] for d in dirs}) > 1
    assert rows(catalog) == expected(data)


def test_changed_spec_evolves_in_the_writing_commit(catalog: Catalog) -> None:
    first = batch(range(20))
    write(catalog, [first], SyncMode.INCREMENTAL_APPEND, spec("updated_at month"))
    second = batch(range(20, 30), month=3)
    write(catalog, [second], SyncMode.INCREMENTAL_APPEND, spec("updated_at day"), run_id="run-2")
    table = catalog.load_table(TABLE)
    assert [str(f.transform) for f in table.spec().fields] == ["day"]
    assert len(table.snapshots()) == 2  # the spec change rode along with the data
    dirs = file_dirs(catalog)
    assert "updated_at_month=2026-01" in dirs
    assert {"updated_at_day=2026-03-01", "updated_at_day=2026-03-02", "updated_at_day=2026-03-03"} <= dirs
    assert rows(catalog) == expected(first, second)
    # An upsert across both specs still finds every key.
    changed = batch([5, 25, 31], day=9, month=4)
    write(catalog, [changed], SyncMode.INCREMENTAL, None, run_id="run-3")
    got = {r["id"]: r["updated_at"] for r in rows(catalog)}
    assert sorted(got) == [*range(30), 31]
    assert got[5] == datetime(2026, 4, 11, 10, tzinfo=UTC)
    assert got[25] == got[31] == datetime(2026, 4, 10, 10, tzinfo=UTC)
    assert got[4] == datetime(2026, 1, 2, 10, tzinfo=UTC)


def test_absent_spec_keeps_the_table_spec_and_empty_unpartitions(catalog: Catalog) -> None:
    write(catalog, [batch(range(5))], SyncMode.FULL_REFRESH, spec("country identity"))
    write(catalog, [batch(range(5, 10))], SyncMode.INCREMENTAL_APPEND, None, run_id="run-2")
    assert [f.name for f in catalog.load_table(TABLE).spec().fields] == ["country"]
    write(catalog, [batch(range(10))], SyncMode.FULL_REFRESH, [], run_id="run-3")
    table = catalog.load_table(TABLE)
    assert table.spec().fields == ()
    assert len(rows(catalog)) == 10


def test_partition_on_a_missing_or_unsuitable_column_is_a_config_error(catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match="'region' is not in the stream"):
        write(catalog, [batch(range(3))], SyncMode.FULL_REFRESH, spec("region identity"))
    with pytest.raises(ConfigError, match=r"'country' is string.*day"):
        write(catalog, [batch(range(3))], SyncMode.FULL_REFRESH, spec("country day"))
    with pytest.raises(ConfigError, match="repeated"):
        write(catalog, [batch(range(3))], SyncMode.FULL_REFRESH, spec("country identity", "country identity"))


def test_the_pipeline_api_refuses_unknown_transforms_and_the_writer_too(catalog: Catalog) -> None:
    # The API refuses them when a pipeline is saved; the wire contract only checks types (a newer
    # producer may know more transforms), so the writer refuses what it cannot apply.
    for bad in ("weekly", "bucket[0]", "bucket", "truncate[x]"):
        with pytest.raises(ValidationError):
            api.StreamSpec(name="s", partition=[api.PartitionField(column="c", transform=bad)])
    assert api.StreamSpec(name="s").partition is None
    assert api.PartitionField(column="c").transform == "identity"
    assert StreamSpec(name="s").partition is None
    assert PartitionField(column="c").transform == "identity"
    with pytest.raises(ConfigError, match="weekly"):
        write(catalog, [batch(range(3))], SyncMode.FULL_REFRESH, spec("updated_at weekly"))


def parquet_dir(settings: LakehouseSettings) -> Path:
    return Path(settings.warehouse.removeprefix("file://")) / "parquet" / "shop" / "orders"


def read_parquet(settings: LakehouseSettings) -> list[dict[str, object]]:
    hive = ds.partitioning(pa.schema([pa.field("country", pa.string())]), flavor="hive")
    data = ds.dataset(parquet_dir(settings), format="parquet", partitioning=hive).to_table()
    return data.select(SCHEMA.names).sort_by("id").to_pylist()


def test_parquet_writes_hive_directories(settings: LakehouseSettings) -> None:
    data = batch(range(30))
    write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, run_id="r1",
                                                partition=spec("country identity", "updated_at day")), [data])
    root = parquet_dir(settings)
    dirs = {str(p.parent.relative_to(root)) for p in root.rglob("*.parquet")}
    assert dirs == {f"country={c}/updated_at_day=2026-01-0{d}" for c in ("NL", "DE", "__HIVE_DEFAULT_PARTITION__")
                    for d in (1, 2, 3)}
    # Identity columns live in the directory name only; derived ones sit beside their source column.
    one = next(root.rglob("*.parquet"))
    assert ds.dataset(one, format="parquet").schema.names == ["id", "updated_at"]
    assert read_parquet(settings) == expected(data)


def test_parquet_layout_changes_only_with_a_full_refresh(settings: LakehouseSettings) -> None:
    write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, run_id="r1",
                                                partition=spec("updated_at month")), [batch(range(10))])
    # Absent: the files' layout is kept.
    write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL_APPEND, run_id="r2"),
                         [batch(range(10, 12), month=2)])
    months = {p.parent.name for p in parquet_dir(settings).rglob("*.parquet")}
    assert months == {"updated_at_month=2026-01", "updated_at_month=2026-02"}
    with pytest.raises(ConfigError, match=r"partitioned by updated_at month.*full refresh"):
        write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL_APPEND, run_id="r3",
                                                    partition=spec("country identity")), [batch([20])])
    data = batch(range(8))
    write_parquet_stream(settings, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, run_id="r4",
                                                partition=spec("country identity")), [data])
    assert {p.parent.name for p in parquet_dir(settings).rglob("*.parquet")} == {
        "country=NL", "country=DE", "country=__HIVE_DEFAULT_PARTITION__"}
    assert read_parquet(settings) == expected(data)
