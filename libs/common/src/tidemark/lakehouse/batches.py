"""The input side of every write: conform batches to the table's Arrow schema, count, chunk."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from tidemark.errors import ConfigError, TerminalError
from tidemark.lakehouse.state import CursorTracker

# Arrow bytes per chunk: one data file (one row group) each. Small enough that peak memory stays
# well under 400 MB and a merge rewrites little beyond the rows it changes; big enough that
# per-file costs do not show (5M rows of the benchmark table make 24 files).
DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024


def writable_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` as the lakehouse stores it: every column nullable (a source tightening or
    loosening NOT NULL must not break the table) and timestamps in microseconds (Iceberg v2)."""
    fields = []
    for field in schema:
        typ = field.type
        if pa.types.is_timestamp(typ) and typ.unit == "ns":
            typ = pa.timestamp("us", tz=typ.tz)
        fields.append(pa.field(field.name, typ, nullable=True))
    return pa.schema(fields)


def check_columns(schema: pa.Schema, identifier: str, primary_key: Sequence[str],
                  cursor_field: str | None) -> None:
    missing = [c for c in [*primary_key, *([cursor_field] if cursor_field else [])]
               if schema.get_field_index(c) < 0]
    if missing:
        raise ConfigError(f"table {identifier}: key or cursor columns {missing} are not in the stream",
                          columns=missing)


class Feed:
    """Iterates the source's batches once, cast to ``schema``, counting rows and tracking the cursor;
    ``final_cursor``, when given, may supply the cursor value once the batches are all seen."""

    def __init__(self, batches: Iterable[pa.RecordBatch], schema: pa.Schema, cursor_field: str | None,
                 final_cursor: Callable[[], Any] | None = None) -> None:
        self._batches = batches
        self.schema = schema
        self.rows = 0
        self.cursor = CursorTracker(cursor_field, schema)
        self._final_cursor = final_cursor

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        required = [f.name for f in self.schema if not f.nullable]
        for batch in self._batches:
            for name in required:
                if batch.schema.get_field_index(name) >= 0 and batch.column(name).null_count:
                    raise TerminalError(
                        f"column {name!r} is part of the table's key, but the source sent NULL in it; "
                        "a key column cannot hold NULL"
                    )
            if batch.schema != self.schema:
                try:
                    # safe=False: nanoseconds truncate to microseconds instead of failing the run.
                    batch = batch.select(self.schema.names).cast(self.schema, safe=False)
                except (KeyError, ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise TerminalError(
                        f"the source produced a batch that does not match its declared schema: {exc}"
                    ) from exc
            self.rows += batch.num_rows
            self.cursor.observe(batch)
            yield batch
        if self._final_cursor is not None and self.cursor.field is not None:
            final = self._final_cursor()
            if final is not None:
                self.cursor.value = final


def chunks(batches: Iterable[pa.RecordBatch], max_bytes: int,
           max_rows: int | None = None) -> Iterator[list[pa.RecordBatch]]:
    """Group batches so each group stays under ``max_bytes`` (and ``max_rows``) of Arrow memory,
    except a single batch larger than the bound, which forms its own group."""
    group: list[pa.RecordBatch] = []
    size = rows = 0
    for batch in _sliced(batches, max_rows):
        if group and (size + batch.nbytes > max_bytes or (max_rows and rows + batch.num_rows > max_rows)):
            yield group
            group, size, rows = [], 0, 0
        group.append(batch)
        size += batch.nbytes
        rows += batch.num_rows
    if group:
        yield group


def _sliced(batches: Iterable[pa.RecordBatch], max_rows: int | None) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if not max_rows or batch.num_rows <= max_rows:
            yield batch
            continue
        for offset in range(0, batch.num_rows, max_rows):
            yield batch.slice(offset, max_rows)
