"""A pipeline saved unchecked (``?validate=false``) or a source that changed since: whatever the
worker can still meet fails the stream as a config error naming the stream and the column,
never as an internal error, and leaves no table behind."""

from __future__ import annotations

import pytest

from tidemark.connectors.sql.sqlite import SQLiteConfig, SQLiteSource
from tidemark.events import DestinationSpec, PartitionField, StreamSpec, SyncMode
from tidemark.lakehouse import Lakehouse, table_identifier
from tidemark_ingest.worker.load import INTERNAL_ERROR, Progress, load_stream

pytestmark = pytest.mark.unit

INCREMENTAL = SyncMode.INCREMENTAL
APPEND = SyncMode.INCREMENTAL_APPEND
CASES = [
    pytest.param(StreamSpec(name="main.nope"), "main.nope", "does not exist", id="missing-stream"),
    pytest.param(StreamSpec(name="main.orders", columns=["id", "colour"]), "colour", "unknown columns",
                 id="missing-column"),
    pytest.param(StreamSpec(name="main.orders", columns=["id", "status", "id"]), "'id'", "more than once",
                 id="column-twice"),
    pytest.param(StreamSpec(name="main.orders", sync_mode=INCREMENTAL, primary_key=["order_no"], cursor_field="id"),
                 "order_no", "key columns", id="missing-key"),
    pytest.param(StreamSpec(name="main.orders", sync_mode=INCREMENTAL, primary_key=["id", "id"], cursor_field="id"),
                 "'id'", "more than once", id="key-twice"),
    pytest.param(StreamSpec(name="main.orders", sync_mode=INCREMENTAL, primary_key=["id"], cursor_field="updated_at",
                            columns=["updated_at", "status"]), "'id'", "not in the stream", id="key-not-selected"),
    pytest.param(StreamSpec(name="main.orders", sync_mode=APPEND, cursor_field="changed"), "'changed'",
                 "not in the stream", id="missing-cursor"),
    pytest.param(StreamSpec(name="main.orders", sync_mode=APPEND, cursor_field="status"), "'status' is string",
                 "cannot order changes", id="text-cursor"),
    pytest.param(StreamSpec(name="main.orders", sync_mode=APPEND, cursor_field="paid"), "'paid' is bool",
                 "cannot order changes", id="boolean-cursor"),
    pytest.param(StreamSpec(name="main.orders", cursor_field="status"), "'status' is string",
                 "cannot order changes", id="full-refresh-text-cursor"),
    pytest.param(StreamSpec(name="main.orders", partition=[PartitionField(column="region")]), "region",
                 "partition columns", id="missing-partition-column"),
    pytest.param(StreamSpec(name="main.orders", partition=[PartitionField(column="status", transform="day")]),
                 "'status'", "cannot be partitioned by day", id="partition-transform"),
]


@pytest.mark.parametrize(("stream", "column", "reason"), CASES)
def test_an_unloadable_stream_is_a_config_error_naming_stream_and_column(
    lake: Lakehouse, stream: StreamSpec, column: str, reason: str
) -> None:
    source = SQLiteSource(SQLiteConfig(path="sample:shop"))
    destination = DestinationSpec(namespace="checks")
    stats = load_stream(lake, source, destination, stream, "run-1", Progress())
    assert stats.status == "failed"
    assert stats.error is not None
    assert stats.error.message != INTERNAL_ERROR
    assert stats.error.kind == "config"
    assert stats.error.stream == stream.name
    assert stream.name in stats.error.message
    assert column in stats.error.message
    assert reason in stats.error.message
    assert not lake.catalog.table_exists(table_identifier(destination, stream.name))


def test_the_cursor_error_lists_the_usable_cursors(lake: Lakehouse) -> None:
    source = SQLiteSource(SQLiteConfig(path="sample:shop"))
    stream = StreamSpec(name="main.customers", sync_mode=INCREMENTAL, primary_key=["id"], cursor_field="email")
    stats = load_stream(lake, source, DestinationSpec(namespace="checks"), stream, "run-1", Progress())
    assert stats.error is not None
    assert "usable: id, created_at, updated_at" in stats.error.message
