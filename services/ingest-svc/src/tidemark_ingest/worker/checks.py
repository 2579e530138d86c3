"""A stream's settings checked against what the source will send, before anything is read.

The API checks pipelines against the source's catalog when they are saved, but a pipeline
saved with ``?validate=false``, or a source that changed since, reaches the worker unchecked.
Whatever it can still get wrong fails the stream here as a *config* error naming the stream
and the column, never later as an internal error deep in the writer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pyarrow as pa

from tidemark.connectors.sql.tables import is_cursor_type
from tidemark.errors import ConfigError
from tidemark.events import StreamSpec

SHOWN = 20


def _listed(names: Iterable[str]) -> str:
    items = list(names)
    shown = ", ".join(items[:SHOWN])
    return shown if len(items) <= SHOWN else f"{shown} … and {len(items) - SHOWN} more"


def _twice(names: Iterable[str]) -> list[str]:
    return [name for name, count in Counter(names).items() if count > 1]


def check_stream(stream: StreamSpec, schema: pa.Schema) -> None:
    """Raise :class:`ConfigError` when ``stream`` cannot be loaded from batches of ``schema``."""
    name = stream.name
    loaded = schema.names
    for what, names in (("columns", loaded), ("primary_key", stream.primary_key)):
        if repeated := _twice(names):
            raise ConfigError(f"stream {name}: {what} lists {', '.join(map(repr, repeated))} more than once",
                              stream=name, columns=repeated)
    available = f"the stream's loaded columns: {_listed(loaded)}"
    if missing := [c for c in stream.primary_key if c not in loaded]:
        raise ConfigError(f"stream {name}: key columns {missing} are not in the stream; {available}",
                          stream=name, columns=missing)
    cursor = stream.cursor_field
    # A full refresh records its cursor too (the next incremental run starts from it).
    if cursor is not None:
        if cursor not in loaded:
            raise ConfigError(f"stream {name}: cursor column {cursor!r} is not in the stream; {available}",
                              stream=name, columns=[cursor])
        kind = schema.field(cursor).type
        if not is_cursor_type(kind):
            usable = [f.name for f in schema if is_cursor_type(f.type)]
            raise ConfigError(
                f"stream {name}: cursor column {cursor!r} is {kind}, which cannot order changes (a cursor must be an "
                f"integer, decimal, date or timestamp column); usable: {_listed(usable) or 'none'}",
                stream=name, columns=[cursor])
    if missing := [p.column for p in stream.partition or () if p.column not in loaded]:
        raise ConfigError(f"stream {name}: partition columns {missing} are not in the stream; {available}",
                          stream=name, columns=missing)
