"""How the CLI lays out tables, runs and Iceberg tables: nothing is cut, everything fits the width."""

from __future__ import annotations

import pytest

from tidemark_cli.output import record, table, times, when
from tidemark_cli.pipelines_cmd import graph_text
from tidemark_cli.streams import StreamOptions, build_streams
from tidemark_cli.views import run_exit_code, show_run, show_table

pytestmark = pytest.mark.unit

LONG = ("stream main.orders: column amount (decimal(10, 2)) at row 4711 holds 123456789012.5 which does not fit; "
        "widen the column or exclude it with columns=[...] — nothing was committed for this stream")


def words(text: str) -> list[str]:
    return " ".join(text.split()).split(" ")


def test_long_cells_wrap_within_the_width_and_lose_nothing() -> None:
    out = table([{"run_id": "0193-aaaa", "status": "failed", "error": LONG}], width=70)
    lines = out.splitlines()
    assert all(len(line) <= 70 for line in lines), out
    assert lines[0].split() == ["RUN_ID", "STATUS", "ERROR"]
    assert len(lines) > 3  # the message took several lines
    error_column = lines[0].index("ERROR")
    wrapped = " ".join(line[error_column:].strip() for line in lines[1:])
    assert words(wrapped) == words(LONG)


def test_words_longer_than_a_column_are_broken_not_dropped() -> None:
    path = "s3://bucket/" + "x" * 150 + "/metadata.json"
    out = table([{"name": "t", "location": path}], width=60)
    assert all(len(line) <= 60 for line in out.splitlines())
    lines = out.splitlines()
    start = lines[0].index("LOCATION")
    assert "".join(line[start:].strip() for line in lines[1:]) == path


def test_narrow_columns_keep_their_width_and_headers_stay_whole() -> None:
    out = table([{"pipeline_name": "demo-shop", "rows_written": 1200, "error": LONG}], width=60)
    header = out.splitlines()[0]
    assert header.split() == ["PIPELINE_NAME", "ROWS_WRITTEN", "ERROR"]
    assert "demo-shop" in out.splitlines()[1]
    assert "1200" in out.splitlines()[1]


def test_empty_and_null_cells() -> None:
    assert table([]) == "(none)"
    out = table([{"a": None, "b": [1, 2], "c": True}], width=80)
    assert out.splitlines()[1].split() == ["-", "1,2", "yes"]
    assert table([{"a": None}], null="null", width=80).splitlines()[1] == "null"


def test_record_aligns_labels_and_wraps_values_under_themselves() -> None:
    out = record([("run", "0193"), ("error", LONG)], width=60)
    lines = out.splitlines()
    assert lines[0] == "run:   0193"
    assert lines[1].startswith("error: ")
    assert all(line.startswith(" " * 7) for line in lines[2:])
    assert words(" ".join(line[7:] for line in lines[1:])) == words(LONG)


RUN = {
    "run_id": "0193ab", "pipeline_id": "p-1", "pipeline_name": "shop", "trigger": "manual", "status": "failed",
    "attempt": 1, "scheduled_for": None, "requested_at": "2026-12-05T10:00:00Z", "started_at": "2026-12-05T10:00:01Z",
    "finished_at": "2026-12-05T10:00:09Z", "rows_read": 1200, "rows_written": 200, "bytes_written": 1,
    "worker_ref": "4242", "error": "1 of 2 streams failed: main.orders",
    "streams": [
        {"stream": "main.customers", "table": "demo.customers", "status": "succeeded", "rows_read": 200,
         "rows_written": 200, "duration_seconds": 1.234, "snapshot_id": 1, "error": None,
         "warnings": [{"kind": "zero_date_to_null", "column": "born", "count": 3,
                       "message": "zero dates (0000-00-00) became NULL as documented"}]},
        {"stream": "main.orders", "table": "demo.orders", "status": "failed", "rows_read": 1000,
         "rows_written": 0, "duration_seconds": 2.0, "snapshot_id": None,
         "error": {"message": LONG, "kind": "config", "stream": "main.orders"}},
    ],
}


def test_run_shows_its_facts_then_each_stream_and_its_warnings() -> None:
    out = show_run(RUN, width=100)
    head, streams, warnings = out.split("\n\n")
    assert "pipeline: shop (p-1)" in " ".join(head.split())
    assert "scheduled for" not in head  # a manual run has no schedule time
    assert "status:" in head
    assert "failed" in head
    assert "1200 read, 200 written" in head
    assert "1 of 2 streams failed: main.orders" in head
    assert streams.splitlines()[0] == "Streams"
    assert streams.splitlines()[1].split() == [
        "STREAM", "TABLE", "STATUS", "ROWS_READ", "ROWS_WRITTEN", "SECONDS", "ERROR"]
    assert all(len(line) <= 100 for line in out.splitlines())
    assert words(streams).count("[config]") == 1  # the whole message, then its kind
    for word in words(LONG):
        assert word in words(streams)
    assert warnings.splitlines()[0] == "Warnings"
    assert warnings.splitlines()[2].split()[:4] == ["main.customers", "zero_date_to_null", "born", "3"]


def test_run_without_streams_or_warnings_shows_only_its_facts() -> None:
    queued = {**RUN, "status": "queued", "streams": [], "error": None, "finished_at": None}
    out = show_run(queued, width=100)
    assert "Streams" not in out
    assert "Warnings" not in out
    assert "finished: - rows:" in " ".join(out.split())


def test_exit_codes_tell_partial_from_failed() -> None:
    assert run_exit_code("succeeded") == 0
    assert run_exit_code("partially_succeeded") == 3
    assert run_exit_code("failed") == 1
    assert run_exit_code("cancelled") == 1


def test_table_detail_shows_source_cursor_columns_and_snapshots() -> None:
    detail = {
        "identifier": "demo.orders", "namespace": "demo", "name": "orders", "location": "file:///w/demo/orders",
        "row_count": 1000, "current_snapshot_id": 77, "last_updated": "2026-12-05T10:00:09Z",
        "last_run_id": "0193ab",
        "source": {"pipeline_id": "p-1", "pipeline_name": "shop", "connection_id": "c-1", "stream": "main.orders"},
        "cursor": {"field": "updated_at", "value": "2026-12-05T09:59:00+00:00"},
        "identifier_fields": ["id"], "partition": [],
        "columns": [{"id": 1, "name": "id", "type": "long", "required": True, "identifier": True},
                    {"id": 2, "name": "note", "type": "string", "required": False, "identifier": False}],
        "snapshots": [{"snapshot_id": 77, "parent_id": 76, "committed_at": "2026-12-05T10:00:09Z",
                       "operation": "overwrite", "run_id": "0193ab", "added_rows": 10, "deleted_rows": 5,
                       "total_rows": 1000}],
    }
    out = show_table(detail, width=120)
    flat = " ".join(out.split())
    assert "pipeline: shop (p-1)" in flat
    assert "source stream: main.orders" in flat
    assert "cursor: updated_at = 2026-12-05T09:59:00+00:00" in flat
    assert "primary key: id" in flat
    assert "NAME TYPE REQUIRED KEY" in flat
    assert "id long yes yes" in flat
    assert "note string no no" in flat
    assert "77 2026-12-05 10:00:09 overwrite 0193ab 10 5 1000" in flat  # times shown in UTC to the second


def test_update_keeps_each_streams_settings_unless_overridden() -> None:
    current = [{"name": "main.orders", "sync_mode": "incremental", "cursor_field": "updated_at",
                "primary_key": ["id"], "lookback": 60}]
    nothing = StreamOptions()
    # New list: the kept stream keeps lookback and key; the new one starts from the API's defaults.
    assert build_streams(current, ("main.orders", "main.customers"), None, nothing) == [
        current[0], {"name": "main.customers"}]
    # Options change every stream of the list; "" clears the cursor, the key and the column list.
    options = StreamOptions.from_cli("full_refresh", "", "", "", None, ("updated_at:day", "id:bucket[4]"))
    assert build_streams(current, (), None, options) == [{
        "name": "main.orders", "sync_mode": "full_refresh", "cursor_field": None, "primary_key": [],
        "columns": None, "lookback": 60,
        "partition": [{"column": "updated_at", "transform": "day"}, {"column": "id", "transform": "bucket[4]"}],
    }]
    # A streams file gives the list itself; options still apply on top.
    from_file = [{"name": "a", "sync_mode": "incremental_append", "cursor_field": "n"}]
    assert build_streams(current, (), from_file, StreamOptions(lookback=5)) == [{**from_file[0], "lookback": 5}]
    assert StreamOptions.from_cli(None, None, None, None, None, (), True).apply({"name": "a"}) == {
        "name": "a", "partition": []}
    assert not nothing.given


def test_timestamps_read_as_utc_seconds_in_tables_but_not_in_other_text() -> None:
    assert when("2026-12-05T18:35:21.286000Z") == "2026-12-05 18:35:21"
    assert when("2026-12-05T20:35:21+02:00") == "2026-12-05 18:35:21"
    assert when("main.orders") == "main.orders"
    assert when(None) is None
    assert times({"finished_at": "2026-12-05T18:35:21Z", "name": "2026-12-05T18:35:21Z"}) == {
        "finished_at": "2026-12-05 18:35:21", "name": "2026-12-05T18:35:21Z"}


def test_ids_and_timestamps_stay_whole_while_messages_wrap() -> None:
    row = {"run_id": "01a2477d-22d4-7524-a434-71d6c70eec46", "finished_at": "2026-12-05 18:35:21", "error": LONG}
    out = table([row], width=100)
    assert row["run_id"] in out.splitlines()[1]
    assert row["finished_at"] in out.splitlines()[1]


def test_a_long_single_token_value_stays_on_one_line_in_a_record() -> None:
    path = "file:///tmp/warehouse/lake/raw_orders/metadata/00002-df2be34d-90da-41ce-97d8-f771f59cf6a8.metadata.json"
    assert record([("metadata", path)], width=60) == f"metadata: {path}"


def test_pipeline_graph_prints_both_directions_as_trees_with_a_diamond_under_each_path() -> None:
    def node(name: str, depth: int, *children: dict[str, object]) -> dict[str, object]:
        return {"id": name, "name": name, "depth": depth, "children": list(children)}

    graph = {"id": "a", "name": "a", "upstreams": [],
             "downstreams": [node("b", 1, node("d", 2)), node("c", 1, node("d", 2))]}
    assert graph_text(graph).splitlines() == [
        "a",
        "├── upstreams (run before it)",
        "│   (none)",
        "└── downstreams (run after it)",
        "    ├── b",
        "    │   └── d",
        "    └── c",
        "        └── d",
    ]
