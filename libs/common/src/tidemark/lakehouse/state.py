"""Stream state committed with the data: run id and cursor live in the snapshot summary.

The writer records, with every commit, which run wrote it and the largest
cursor value it saw. Reading the state back from the table (not from a side
store) means a crash between "data written" and "state saved" cannot happen:
both are one commit.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tidemark.connectors.base import StreamState

RUN_ID = "tidemark.run-id"
CURSOR = "tidemark.cursor"
CURSOR_FIELD = "tidemark.cursor-field"
CURSOR_TYPE = "tidemark.cursor-type"

# Table properties: where a table's rows come from, kept with the table for readers and the API.
SOURCE_STREAM = "tidemark.source-stream"
PIPELINE_ID = "tidemark.pipeline-id"
PIPELINE_NAME = "tidemark.pipeline-name"
CONNECTION_ID = "tidemark.connection-id"


@dataclass(frozen=True)
class WriteResult:
    rows_written: int
    bytes_written: int
    snapshot_id: int | None
    cursor_value: Any
    # The table's files after the write (Iceberg), from the snapshot summary: what decides a compaction.
    data_files: int | None = None
    delete_files: int | None = None
    files_bytes: int | None = None
    # Reconciliation (when the request gave ``rows_read``): the rows checked, the rows the commit added
    # (a merge: the rows it received), and for a full refresh the table's rows after the commit.
    rows_read: int | None = None
    rows_committed: int | None = None
    table_rows: int | None = None


class CursorTracker:
    """The largest value of one column over every batch it is shown."""

    def __init__(self, field: str | None, schema: pa.Schema) -> None:
        self.field = field
        self.type: pa.DataType | None = schema.field(field).type if field is not None else None
        self.value: Any = None

    def observe(self, batch: pa.RecordBatch) -> None:
        if self.field is None or batch.num_rows == 0:
            return
        candidate = pc.max(batch.column(self.field)).as_py()
        if candidate is not None and (self.value is None or candidate > self.value):
            self.value = candidate


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot encode cursor value of type {type(value).__name__}")


def summary_properties(run_id: str, tracker: CursorTracker) -> dict[str, str]:
    props = {RUN_ID: run_id}
    if tracker.field is not None:
        props[CURSOR_FIELD] = tracker.field
        props[CURSOR] = json.dumps(tracker.value, default=_json_default)
        props[CURSOR_TYPE] = str(tracker.type)
    return props


def _decode(raw: str, type_name: str | None) -> Any:
    value = json.loads(raw)
    if value is None or type_name is None or not isinstance(value, str):
        return value
    # Give the source the cursor back in its own type, so its comparison is typed, not textual.
    if type_name.startswith("timestamp"):
        return dt.datetime.fromisoformat(value)
    if type_name.startswith("date"):
        return dt.date.fromisoformat(value)
    if type_name.startswith("time"):
        return dt.time.fromisoformat(value)
    if type_name.startswith("decimal"):
        return Decimal(value)
    if type_name.startswith(("binary", "large_binary")):
        return bytes.fromhex(value)
    return value


def state_from_properties(props: Mapping[str, str]) -> StreamState | None:
    """The state a Tidemark commit recorded; None when it recorded no cursor."""
    raw = props.get(CURSOR)
    if raw is None:
        return None
    return StreamState(cursor_field=props.get(CURSOR_FIELD), cursor_value=_decode(raw, props.get(CURSOR_TYPE)))
