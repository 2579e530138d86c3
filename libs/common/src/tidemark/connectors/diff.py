"""What changed between two catalogs of one connection, as the changes ``schema.drift`` carries.

Catalogs come from ``discover`` (any source), so the diff works the same for every database,
file or API source. A rename cannot be seen in a catalog: a column dropped and one of the same
type added at the same position in one change set is reported as a *probable* rename."""

from __future__ import annotations

import re

from tidemark.connectors.base import Catalog, ColumnInfo, StreamInfo
from tidemark.events import SchemaChange

_INT_WIDTH = {"int8": 8, "int16": 16, "int32": 32, "int64": 64,
              "uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64}
_FLOAT_WIDTH = {"halffloat": 16, "float": 32, "double": 64}
_DECIMAL = re.compile(r"decimal(?:128|256)\((\d+), (\d+)\)")
_STRINGS = {"string", "large_string", "string_view"}
_LENGTHS = re.compile(r"\d+")


def diff_catalogs(before: Catalog, after: Catalog) -> list[SchemaChange]:
    """Every change from ``before`` to ``after``, streams in name order, columns in table order."""
    old = {s.name: s for s in before.streams}
    new = {s.name: s for s in after.streams}
    changes: list[SchemaChange] = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            changes.append(SchemaChange(kind="stream_removed", stream=name, breaking=True))
        elif name not in old:
            changes.append(SchemaChange(kind="stream_added", stream=name))
        else:
            changes.extend(diff_stream(old[name], new[name]))
    return changes


def diff_stream(before: StreamInfo, after: StreamInfo) -> list[SchemaChange]:
    changes = _stream_changes(before, after)
    known = before.column_names()
    return [c.model_copy(update={"stream_columns": known}) if c.column is not None else c for c in changes]


def _stream_changes(before: StreamInfo, after: StreamInfo) -> list[SchemaChange]:
    stream = after.name
    old = {c.name: (i, c) for i, c in enumerate(before.columns)}
    new = {c.name: (i, c) for i, c in enumerate(after.columns)}
    removed = [name for name in old if name not in new]
    added = [name for name in new if name not in old]
    renamed = _renames(removed, added, old, new)
    changes: list[SchemaChange] = []
    for name in removed:
        if name in renamed:
            changes.append(SchemaChange(kind="column_renamed", stream=stream, column=renamed[name], before=name,
                                        after=renamed[name], breaking=True, probable=True))
        else:
            changes.append(SchemaChange(kind="column_removed", stream=stream, column=name,
                                        before=old[name][1].source_type, breaking=True))
    for name in added:
        if name not in renamed.values():
            changes.append(SchemaChange(kind="column_added", stream=stream, column=name,
                                        after=new[name][1].source_type))
    for name, (_, was) in old.items():
        if name in new:
            changes.extend(_column_changes(stream, was, new[name][1]))
    if before.primary_key != after.primary_key:
        changes.append(SchemaChange(kind="primary_key_changed", stream=stream, before=",".join(before.primary_key),
                                    after=",".join(after.primary_key), breaking=True))
    return changes


def _renames(removed: list[str], added: list[str], old: dict[str, tuple[int, ColumnInfo]],
             new: dict[str, tuple[int, ColumnInfo]]) -> dict[str, str]:
    """``{old name: new name}`` for removed and added columns paired one to one by position and type."""
    pairs: dict[str, str] = {}
    for gone in removed:
        position, column = old[gone]
        matches = [name for name in added
                   if new[name][0] == position and new[name][1].type == column.type
                   and new[name][1].source_type == column.source_type]
        if len(matches) == 1 and matches[0] not in pairs.values():
            pairs[gone] = matches[0]
    return pairs


def _column_changes(stream: str, was: ColumnInfo, now: ColumnInfo) -> list[SchemaChange]:
    changes: list[SchemaChange] = []
    if was.type != now.type or was.source_type != now.source_type:
        kind = type_change(was, now)
        changes.append(SchemaChange(kind="type_changed", stream=stream, column=now.name, before=was.source_type,
                                    after=now.source_type, type_change=kind, breaking=kind != "widening"))
    if was.nullable != now.nullable:
        changes.append(SchemaChange(kind="nullability_changed", stream=stream, column=now.name,
                                    before="null" if was.nullable else "not null",
                                    after="null" if now.nullable else "not null"))
    if was.default != now.default:
        changes.append(SchemaChange(kind="default_changed", stream=stream, column=now.name, before=was.default,
                                    after=now.default))
    return changes


def type_change(was: ColumnInfo, now: ColumnInfo) -> str:
    """``widening`` when every old value fits the new type unchanged (and an Iceberg table can
    promote the column), ``narrowing`` when the new type is the same kind but smaller, else
    ``incompatible``."""
    a, b = was.type, now.type
    if a == b or (a in _STRINGS and b in _STRINGS):
        return _by_declared_length(was.source_type, now.source_type)
    if a in _INT_WIDTH and b in _INT_WIDTH:
        if a.startswith("u") != b.startswith("u"):
            return "incompatible"
        return "widening" if _INT_WIDTH[b] > _INT_WIDTH[a] else "narrowing"
    if a in _FLOAT_WIDTH and b in _FLOAT_WIDTH:
        return "widening" if _FLOAT_WIDTH[b] > _FLOAT_WIDTH[a] else "narrowing"
    da, db = _DECIMAL.fullmatch(a), _DECIMAL.fullmatch(b)
    if da and db:
        if da.group(2) != db.group(2):
            return "incompatible"
        return "widening" if int(db.group(1)) >= int(da.group(1)) else "narrowing"
    return "incompatible"


def _by_declared_length(was: str, now: str) -> str:
    """Same Arrow type, different declaration (``varchar(50)`` → ``varchar(20)`` or ``text``): lengths decide."""
    old, new = [int(n) for n in _LENGTHS.findall(was)], [int(n) for n in _LENGTHS.findall(now)]
    if not new:
        return "widening"  # unbounded now
    if not old or len(old) != len(new):
        return "narrowing" if not old else "incompatible"
    return "widening" if all(n >= o for o, n in zip(old, new, strict=True)) else "narrowing"
