"""What a pipeline must satisfy beyond its body's shape, checked when it is created or changed.

Three kinds of rule, each a plain function returning the problems it finds (``errors[]`` items
with the exact field path, e.g. ``streams.0.cursor_field``):

- :func:`selection_issues`: a stream's key, cursor and partition columns are among the columns
  it loads (needs nothing but the body);
- :func:`catalog_issues`: streams, columns, keys, cursors and partition columns exist in the
  connection's discovered catalog, and the cursor can order changes (needs the source);
- :func:`collision_issues`: no two streams write one table, in this pipeline or another one
  writing the same destination kind and namespace (needs the other pipelines).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tidemark.connectors import Catalog, StreamInfo
from tidemark.errors import ConfigError, ConflictError, TransientError
from tidemark.events import DestinationSpec, StreamSpec
from tidemark.lakehouse.naming import table_name

Issue = dict[str, str]
FLAG = "validate=false"
SHOWN = 20  # names listed in a message before "… and N more"


def issue(field: str, message: str, type_: str) -> Issue:
    return {"field": field, "message": message, "type": type_}


def listed(names: Iterable[str], limit: int = SHOWN) -> str:
    """``a, b, c`` — at most ``limit`` names, then how many were left out."""
    items = list(names)
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} … and {len(items) - limit} more"


def _repeats(where: str, what: str, stream: str, names: Sequence[str]) -> list[Issue]:
    seen: set[str] = set()
    found: list[Issue] = []
    for j, name in enumerate(names):
        if name in seen:
            found.append(issue(f"{where}.{j}", f"stream {stream}: {what} {name!r} is listed twice", "repeated"))
        seen.add(name)
    return found


def selection_issues(streams: Sequence[StreamSpec]) -> list[Issue]:
    """Columns and key columns are listed once; key, cursor and partition columns must be loaded:
    the writer merges, tracks and partitions on the columns it receives."""
    found: list[Issue] = []
    for i, stream in enumerate(streams):
        found += _repeats(f"streams.{i}.columns", "column", stream.name, stream.columns or ())
        found += _repeats(f"streams.{i}.primary_key", "key column", stream.name, stream.primary_key)
        if stream.columns is None:
            continue
        loaded = set(stream.columns)
        where = f"streams.{i}"
        for j, key in enumerate(stream.primary_key):
            if key not in loaded:
                found.append(issue(f"{where}.primary_key.{j}",
                                   f"stream {stream.name}: key column {key!r} is not among the selected columns "
                                   f"({listed(stream.columns)}); add it to `columns`", "key_not_selected"))
        if stream.cursor_field is not None and stream.cursor_field not in loaded:
            found.append(issue(f"{where}.cursor_field",
                               f"stream {stream.name}: cursor column {stream.cursor_field!r} is not among the "
                               f"selected columns ({listed(stream.columns)}); add it to `columns`",
                               "cursor_not_selected"))
        for j, part in enumerate(stream.partition or ()):
            if part.column not in loaded:
                found.append(issue(f"{where}.partition.{j}.column",
                                   f"stream {stream.name}: partition column {part.column!r} is not among the "
                                   f"selected columns ({listed(stream.columns)}); add it to `columns`",
                                   "partition_not_selected"))
    return found


def catalog_issues(streams: Sequence[StreamSpec], catalog: Catalog) -> list[Issue]:
    found: list[Issue] = []
    for i, stream in enumerate(streams):
        info = catalog.stream(stream.name)
        if info is None:
            found.append(issue(f"streams.{i}.name",
                               f"stream {stream.name!r} does not exist in the source (or the connection's user "
                               f"cannot read it); its streams: {listed(s.name for s in catalog.streams)}",
                               "unknown_stream"))
            continue
        found.extend(_stream_issues(i, stream, info))
    return found


def _stream_issues(i: int, stream: StreamSpec, info: StreamInfo) -> list[Issue]:
    names = info.column_names()
    known = set(names)
    where = f"streams.{i}"
    columns = f"its columns: {listed(names)}"
    found: list[Issue] = []

    def missing(field: str, what: str, column: str, type_: str) -> None:
        found.append(issue(field, f"stream {stream.name}: {what} {column!r} does not exist; {columns}", type_))

    for j, column in enumerate(stream.columns or ()):
        if column not in known:
            missing(f"{where}.columns.{j}", "column", column, "unknown_column")
    for j, column in enumerate(stream.primary_key):
        if column not in known:
            missing(f"{where}.primary_key.{j}", "key column", column, "unknown_key_column")
    cursor = stream.cursor_field
    if cursor is not None:
        if cursor not in known:
            missing(f"{where}.cursor_field", "cursor column", cursor, "unknown_cursor_column")
        elif cursor not in info.cursor_candidates:
            kind = next(c.type for c in info.columns if c.name == cursor)
            found.append(issue(
                f"{where}.cursor_field",
                f"stream {stream.name}: column {cursor!r} is {kind}, which cannot order changes (a cursor must "
                f"be an integer, decimal, date or timestamp); its usable cursors: {listed(info.cursor_candidates)}",
                "unusable_cursor"))
    for j, part in enumerate(stream.partition or ()):
        if part.column not in known:
            missing(f"{where}.partition.{j}.column", "partition column", part.column, "unknown_partition_column")
    return found


@dataclass(frozen=True)
class Neighbour:
    """Another pipeline, as far as table collisions go (plain values: stored pipelines are not
    validated again, a rule added later must not make them unreadable)."""

    name: str
    streams: Sequence[str]
    kind: str
    namespace: str
    table_prefix: str


def collision_issues(streams: Sequence[str], destination: DestinationSpec,
                     others: Iterable[Neighbour]) -> list[Issue]:
    """Every stream whose table another stream (of this pipeline, or of another pipeline writing
    the same kind of destination in the same namespace) already writes."""
    taken: dict[str, tuple[str, str | None]] = {}  # table → (stream, other pipeline's name)
    for other in others:
        if (other.kind, other.namespace) != (destination.kind, destination.namespace):
            continue
        for name in other.streams:
            taken.setdefault(table_name(name, other.table_prefix), (name, other.name))
    found: list[Issue] = []
    for i, stream in enumerate(streams):
        table = table_name(stream, destination.table_prefix)
        owner = taken.get(table)
        if owner is None:
            taken[table] = (stream, None)
            continue
        first, pipeline = owner
        by = f"stream {first!r} of pipeline {pipeline!r}" if pipeline else f"stream {first!r} of this pipeline"
        found.append(issue(f"streams.{i}.name",
                           f"stream {stream!r} would write the {destination.kind} table "
                           f"{destination.namespace}.{table}, which {by} writes; load one of them into "
                           "another namespace or with another table_prefix",
                           "table_collision"))
    return found


def refuse(issues: list[Issue], error: type[ConfigError]) -> None:
    if issues:
        raise error("; ".join(i["message"] for i in issues), errors=issues)


def refuse_invalid(issues: list[Issue]) -> None:
    """422 listing every problem."""
    refuse(issues, ConfigError)


def refuse_collisions(issues: list[Issue]) -> None:
    """409 listing every collision."""
    refuse(issues, ConflictError)


def cannot_validate(reason: str) -> TransientError:
    return TransientError(
        f"cannot validate the pipeline against its source now: {reason}. Try again, or save it without "
        f"checking its streams with `?{FLAG}` (table collisions are still refused)"
    )
