"""What a table carries besides rows: its key as identifier fields, its source in properties,
and no trace of a first write that failed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from tidemark.errors import ConfigError, TerminalError, TransientError
from tidemark.events import SyncMode
from tidemark.lakehouse import LakehouseSettings, WriteOptions, WriteRequest, open_catalog, write_stream

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([pa.field("region", pa.string()), pa.field("id", pa.int64()), pa.field("v", pa.string())])
TABLE = "shop.items"
PROPS = {"tidemark.source-stream": 'sales."Items; x"', "tidemark.pipeline-name": "p1"}


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog(LakehouseSettings().resolve(tmp_path))


def batch(ids: list[int], v: str = "a") -> pa.RecordBatch:
    return pa.record_batch([pa.array(["eu"] * len(ids)), pa.array(ids, pa.int64()), pa.array([v] * len(ids))],
                           schema=SCHEMA)


def test_a_new_table_takes_the_key_as_identifier_fields(catalog: Catalog) -> None:
    write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, ["region", "id"], "r1", "id",
                                       properties=PROPS), [batch([1, 2])])
    table = catalog.load_table(TABLE)
    schema = table.schema()
    assert [schema.find_column_name(i) for i in schema.identifier_field_ids] == ["region", "id"]
    assert {f.name: f.required for f in schema.fields} == {"region": True, "id": True, "v": False}
    assert {k: table.properties[k] for k in PROPS} == PROPS
    # The key stays usable for merges, and later writes keep it.
    write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, ["region", "id"], "r2", "id",
                                       properties={**PROPS, "tidemark.pipeline-name": "p2"}), [batch([2, 3], "b")])
    table = catalog.load_table(TABLE)
    rows = sorted((r["id"], r["v"]) for r in table.scan().to_arrow().to_pylist())
    assert rows == [(1, "a"), (2, "b"), (3, "b")]
    assert table.schema().identifier_field_ids == schema.identifier_field_ids
    assert table.properties["tidemark.pipeline-name"] == "p2"


def test_a_null_key_fails_the_stream_and_leaves_the_table(catalog: Catalog) -> None:
    write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, ["region", "id"], "r1", "id"), [batch([1])])
    before = catalog.load_table(TABLE).current_snapshot()
    bad = pa.record_batch([pa.array([None]), pa.array([2], pa.int64()), pa.array(["x"])], schema=SCHEMA)
    with pytest.raises(TerminalError, match="'region' is part of the table's key"):
        write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, ["region", "id"], "r2", "id"), [bad])
    assert catalog.load_table(TABLE).current_snapshot() == before


def test_a_keyless_table_has_only_optional_columns(catalog: Catalog) -> None:
    write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, [], "r1", None), [batch([1])])
    schema = catalog.load_table(TABLE).schema()
    assert schema.identifier_field_ids == []
    assert not any(f.required for f in schema.fields)


def test_a_failed_first_write_leaves_no_table(catalog: Catalog) -> None:
    def broken() -> Iterator[pa.RecordBatch]:
        yield batch([1, 2])
        raise TransientError("the source went away")

    for mode in SyncMode:
        with pytest.raises(TransientError):
            write_stream(catalog, WriteRequest(TABLE, SCHEMA, mode, ["region", "id"], "r1", "id"), broken(),
                         WriteOptions(chunk_bytes=1))
        assert not catalog.table_exists(TABLE), mode
    # A failure on a table with history keeps the table and its rows.
    write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, ["region", "id"], "r1", "id"),
                 [batch([7])])
    with pytest.raises(TransientError):
        write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, ["region", "id"], "r2", "id"),
                     broken())
    assert catalog.load_table(TABLE).scan().to_arrow()["id"].to_pylist() == [7]


def test_a_table_of_one_stream_refuses_another_streams_rows(catalog: Catalog) -> None:
    mine = {"tidemark.source-stream": "public.y", "tidemark.pipeline-name": "p1"}
    write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, ["region", "id"], "r1", "id",
                                       properties=mine), [batch([1])])
    theirs = {"tidemark.source-stream": "sales.y", "tidemark.pipeline-name": "p2"}
    with pytest.raises(ConfigError, match=r"holds stream 'public.y' of pipeline 'p1', not 'sales.y'"):
        write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, ["region", "id"], "r2", "id",
                                           properties=theirs), [batch([5, 6])])
    assert catalog.load_table(TABLE).scan().to_arrow()["id"].to_pylist() == [1]
