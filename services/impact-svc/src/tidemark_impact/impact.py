"""Impact of a change set, as plain functions: which pipelines load the changed streams, the
pipelines downstream of them, their Iceberg tables and the registered downstreams, each with its
hop distance, and whether the change breaks each pipeline.

Hops count from the source: a pipeline that loads the stream is 1, its table 2, what reads that
table 3; a pipeline that runs after one at hop h is h + 1, and so on."""

from __future__ import annotations

import fnmatch
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from tidemark.events import DestinationSpec, SchemaChange, StreamSpec, SyncMode
from tidemark.lakehouse.naming import table_identifier

# Change kinds that take a column (or the stream) away from whoever loads or reads it.
REMOVING = {"column_removed", "column_renamed", "stream_removed"}
NEW_TABLES = ("add_stream", "create_pipeline")


@dataclass(frozen=True)
class PipelineRef:
    id: uuid.UUID
    name: str
    connection_id: uuid.UUID
    streams: list[StreamSpec]
    destination: DestinationSpec
    upstreams: list[uuid.UUID] = field(default_factory=list)
    drift_policy: dict[str, str] = field(default_factory=dict)

    def selected(self, stream: str) -> StreamSpec | None:
        """The pipeline's stream spec that loads ``stream``: by name, or by a selector such as `public.*`."""
        exact = next((s for s in self.streams if s.name == stream), None)
        if exact is not None:
            return exact
        return next((s for s in self.streams if "*" in s.name and fnmatch.fnmatchcase(stream, s.name)), None)

    def table(self, stream: str) -> str:
        return table_identifier(self.destination.namespace, self.destination.table_prefix, stream)


@dataclass(frozen=True)
class DownstreamRef:
    id: uuid.UUID
    name: str
    kind: str
    table: str
    columns: list[str] | None


class DownstreamHit(BaseModel):
    id: uuid.UUID
    name: str
    kind: str
    table: str
    hop: int
    level: Literal["column", "table"] = Field(
        description="`column`: it declares that it reads the changed column; `table`: only the table is known "
                    "(possibly impacted).",
    )
    possibly: bool = Field(description="Only possibly impacted: its columns are not known.")


class PipelineHit(BaseModel):
    pipeline_id: uuid.UUID
    name: str
    hop: int
    via: uuid.UUID | None = Field(default=None, description="The upstream pipeline it is reached through.")
    breaking: bool
    reason: str
    tables: list[str]
    table_hop: int
    downstreams: list[DownstreamHit]


class ChangeImpact(BaseModel):
    change: SchemaChange
    pipelines: list[PipelineHit]


def affected_column(change: SchemaChange) -> str | None:
    """The column as pipelines and readers knew it: a renamed column's old name."""
    return change.before if change.kind == "column_renamed" else change.column


def analyse(changes: list[SchemaChange], connection_id: uuid.UUID, pipelines: list[PipelineRef],
            downstreams: list[DownstreamRef]) -> list[ChangeImpact]:
    by_table: dict[str, list[DownstreamRef]] = {}
    for d in downstreams:
        by_table.setdefault(d.table, []).append(d)
    return [ChangeImpact(change=c, pipelines=_pipelines(c, connection_id, pipelines, by_table)) for c in changes]


def _pipelines(change: SchemaChange, connection_id: uuid.UUID, pipelines: list[PipelineRef],
               by_table: dict[str, list[DownstreamRef]]) -> list[PipelineHit]:
    column = affected_column(change)
    hits: list[PipelineHit] = []
    queue: deque[tuple[PipelineRef, int, uuid.UUID | None, bool]] = deque()
    for p in pipelines:
        if p.connection_id != connection_id:
            continue
        spec = p.selected(change.stream)
        if change.kind == "stream_added" and spec is None and p.drift_policy.get("table_added") in NEW_TABLES:
            spec = StreamSpec(name=change.stream)  # it asked to take new tables of its connection
        if spec is None:
            continue
        readers = _readers(by_table.get(p.table(change.stream), []), column, change, hop=3)
        breaking, reason = classify(change, spec, readers)
        hits.append(PipelineHit(pipeline_id=p.id, name=p.name, hop=1, breaking=breaking, reason=reason,
                                tables=[p.table(change.stream)], table_hop=2, downstreams=readers))
        queue.append((p, 1, None, breaking))
    seen = {h.pipeline_id for h in hits}
    while queue:
        parent, hop, _, breaking = queue.popleft()
        for child in pipelines:
            if parent.id not in child.upstreams or child.id in seen:
                continue
            seen.add(child.id)
            tables = [child.table(s.name) for s in child.streams]
            readers = [r for t in tables for r in _readers(by_table.get(t, []), None, change, hop=hop + 3)]
            hits.append(PipelineHit(
                pipeline_id=child.id, name=child.name, hop=hop + 1, via=parent.id, breaking=breaking,
                reason=f"runs after {parent.name}, whose load the change {'breaks' if breaking else 'touches'}",
                tables=tables, table_hop=hop + 2, downstreams=readers))
            queue.append((child, hop + 1, parent.id, breaking))
    return hits


def _readers(found: list[DownstreamRef], column: str | None, change: SchemaChange, hop: int) -> list[DownstreamHit]:
    hits = []
    for d in found:
        if column is not None and d.columns is not None:
            if column not in d.columns or change.kind == "column_added":
                continue  # it declares its columns, and this is not one of them
            hits.append(DownstreamHit(id=d.id, name=d.name, kind=d.kind, table=d.table, hop=hop, level="column",
                                      possibly=False))
        else:
            hits.append(DownstreamHit(id=d.id, name=d.name, kind=d.kind, table=d.table, hop=hop, level="table",
                                      possibly=change.kind != "stream_removed"))
    return hits


def classify(change: SchemaChange, spec: StreamSpec, readers: list[DownstreamHit]) -> tuple[bool, str]:
    """Breaking for this pipeline, and why: it removes, renames or narrows a column the pipeline
    loads, uses as cursor or key, or a downstream reads; or it drops the stream or changes the key
    an incremental merge uses."""
    column = affected_column(change)
    if change.kind == "stream_removed":
        return True, "the stream the pipeline loads is gone"
    if change.kind == "primary_key_changed":
        if spec.sync_mode is SyncMode.INCREMENTAL and not spec.primary_key:
            return True, "the incremental merge uses the source's primary key, which changed"
        return False, "the pipeline does not merge on the source's key"
    shrinking = change.kind in REMOVING or (change.kind == "type_changed" and change.type_change != "widening")
    if not shrinking or column is None:
        return False, _non_breaking(change)
    uses = []
    if spec.columns is None or column in spec.columns:
        uses.append("loads")
    if spec.cursor_field == column:
        uses.append("uses as cursor")
    if column in spec.primary_key:
        uses.append("uses as key")
    if any(r.level == "column" for r in readers):
        uses.append("has readers of")
    if not uses:
        return False, f"the pipeline neither loads nor reads `{column}`"
    what = {"column_removed": "removed", "column_renamed": "renamed", "type_changed": "narrowed"}[change.kind]
    if change.kind == "type_changed" and change.type_change == "incompatible":
        what = "changed to an incompatible type"
    return True, f"`{column}`, which the pipeline {', '.join(uses)}, was {what}"


def _non_breaking(change: SchemaChange) -> str:
    return {
        "column_added": "a new column: the table can take it",
        "stream_added": "a new table: nothing loaded changes",
        "type_changed": "a widening: the table's column can be promoted",
        "nullability_changed": "nullability changed: values still fit",
        "default_changed": "a default changed: loaded values do not",
    }.get(change.kind, "nothing the pipeline loads changes")
