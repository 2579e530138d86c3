"""What one write asks for: :class:`WriteRequest` (the table and how to write it) and
:class:`WriteOptions` (how much memory and which merge technique; the process's settings, not the stream's).

Every writer takes the same three things: where (a catalog or the Parquet settings), a request, and the
batches. The batches travel beside the request because they are a one-shot iterator, not a value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from tidemark.events import PartitionField, SyncMode
from tidemark.lakehouse.batches import DEFAULT_CHUNK_BYTES
from tidemark.lakehouse.settings import DEFAULT_MERGE_STRATEGY, MergeStrategy

DEFAULT_UPSERT_CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class WriteRequest:
    """One stream's write into one table.

    ``mode``: ``full_refresh`` replaces the table, ``incremental_append`` appends, ``incremental``
    upserts on ``primary_key``. ``partition`` None keeps the table's layout. ``properties`` are set on
    the table (Iceberg only): its source stream and pipeline; a table holding another stream's rows is
    refused. ``run_id`` and the largest ``cursor_field`` value are committed with the data; a source
    that tracks its own state (a file source's ledger) gives ``final_cursor``, called once the batches
    are consumed, whose value is committed instead. ``unique_keys``: the input holds each
    ``primary_key`` at most once (the source's own primary key covers it, and one read is one
    snapshot of the table), so an ``incremental`` write into an empty table is a plain append.
    ``rows_read``, when given, is called once the batches are consumed, before the commit: how many
    rows the source yielded. The writer commits only when the rows it is about to commit are as many
    (for a full refresh, the table's row count after the commit too); else it raises
    :class:`~tidemark.errors.ReconciliationError` and commits nothing (see ``reconcile.py``).
    """

    identifier: str
    schema: pa.Schema
    mode: SyncMode
    primary_key: Sequence[str] = ()
    run_id: str = ""
    cursor_field: str | None = None
    partition: Sequence[PartitionField] | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    final_cursor: Callable[[], Any] | None = None
    unique_keys: bool = False
    rows_read: Callable[[], int] | None = None


@dataclass(frozen=True)
class WriteOptions:
    """Tuning, the same for every stream of a process.

    ``chunk_bytes`` bounds the Arrow data held at once, ``upsert_chunk_rows`` the keys one merge step
    looks up, ``merge_strategy`` how a merge replaces rows of an unpartitioned Iceberg table (merge.py).
    """

    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    upsert_chunk_rows: int = DEFAULT_UPSERT_CHUNK_ROWS
    merge_strategy: MergeStrategy = DEFAULT_MERGE_STRATEGY


DEFAULT_OPTIONS = WriteOptions()
