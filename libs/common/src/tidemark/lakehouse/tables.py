"""Read-only views of the Iceberg tables in the catalog: what ``/v1/tables`` shows.

Blocking (pyiceberg I/O): async callers use ``asyncio.to_thread``. Nothing here
writes; every write goes through :mod:`tidemark.lakehouse.iceberg`.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from tidemark.errors import NotFoundError
from tidemark.lakehouse.iceberg import read_state
from tidemark.lakehouse.state import CONNECTION_ID, PIPELINE_ID, PIPELINE_NAME, RUN_ID, SOURCE_STREAM
from tidemark.logs import fields

log = logging.getLogger(__name__)


MAX_NAMESPACE_DEPTH = 8


class TableSource(BaseModel):
    pipeline_id: uuid.UUID | None = Field(default=None, description="The pipeline that writes the table.")
    pipeline_name: str | None = Field(default=None, description="Its name when the table was last written.")
    connection_id: uuid.UUID | None = Field(default=None, description="The connection it reads from.")
    stream: str | None = Field(default=None, description="The source stream, e.g. `main.orders`.")

    @property
    def known(self) -> bool:
        return any(v is not None for v in (self.pipeline_id, self.pipeline_name, self.connection_id, self.stream))


class TableSummary(BaseModel):
    identifier: str = Field(description="`namespace.table`, as `/v1/tables/{table}` takes it.")
    namespace: str
    name: str
    source: TableSource | None = Field(
        default=None, description="Where the rows come from; null when Tidemark does not know (not its table)."
    )
    current_snapshot_id: int | None = Field(description="Null for a table with no commit yet.")
    row_count: int | None = Field(
        description="Live rows of the current snapshot (records minus position deletes); null without a snapshot."
    )
    last_updated: dt.datetime = Field(description="When the table's metadata last changed.")
    last_run_id: str | None = Field(
        default=None, description="The Tidemark run that made the newest Tidemark snapshot."
    )


class Column(BaseModel):
    id: int = Field(description="Iceberg field id.")
    name: str
    type: str = Field(description="Iceberg type, e.g. `long`, `timestamptz`, `decimal(10, 2)`.")
    required: bool = Field(description="True when the column may not hold null.")
    identifier: bool = Field(description="Part of the table's identifier fields (the source's primary key).")


class SnapshotOut(BaseModel):
    snapshot_id: int
    parent_id: int | None
    committed_at: dt.datetime
    operation: str | None = Field(description="`append`, `overwrite`, `replace` or `delete`.")
    run_id: str | None = Field(description="The Tidemark run that committed it; null for other writers.")
    added_rows: int | None = Field(description="`added-records` of the snapshot summary.")
    deleted_rows: int | None = Field(
        description="Rows removed: `deleted-records` + `added-position-deletes` - `removed-position-deletes`."
    )
    total_rows: int | None = Field(description="Live rows after this snapshot.")


class StoredCursor(BaseModel):
    field: str | None = Field(description="The cursor column.")
    value: Any = Field(description="The largest cursor value committed, JSON-safe (dates as ISO 8601 text).")


class TableDetail(TableSummary):
    location: str
    metadata_location: str = Field(
        description="The current metadata file, e.g. for DuckDB's `iceberg_scan('<metadata_location>')`."
    )
    format_version: int
    columns: list[Column]
    identifier_fields: list[str] = Field(description="Column names of the identifier fields (primary key).")
    partition: list[str] = Field(description="Partition fields as `transform(column)`.")
    snapshots: list[SnapshotOut] = Field(description="Newest first.")
    cursor: StoredCursor | None = Field(
        description="The incremental state the newest Tidemark snapshot recorded; null for full refresh."
    )


class TablePreview(BaseModel):
    identifier: str
    columns: list[str]
    rows: list[dict[str, Any]] = Field(
        description="Rows as objects. Dates and times are ISO 8601 text, decimals text (exact), binary base64, "
                    "NaN and infinities the text `NaN`, `Infinity`, `-Infinity`."
    )


def split_identifier(identifier: str) -> tuple[str, str]:
    """``ns.table`` (or ``a.b.table``) → namespace, table: the last dot separates them."""
    namespace, _, name = identifier.rpartition(".")
    return namespace, name


def list_tables(catalog: Catalog) -> list[TableSummary]:
    """Every table of every namespace (nested namespaces included), sorted by identifier."""
    out: list[TableSummary] = []
    for namespace in _namespaces(catalog):
        try:
            identifiers = catalog.list_tables(namespace)
        except NoSuchNamespaceError:
            continue  # dropped while we listed
        for identifier in identifiers:
            name = ".".join(identifier)
            try:
                table = catalog.load_table(identifier)
            except (NoSuchTableError, NoSuchNamespaceError):
                continue  # dropped while we listed
            except OSError as exc:
                # One table whose metadata cannot be read must not hide every other table.
                log.warning("table skipped: its metadata cannot be read", extra=fields(table=name, error=str(exc)))
                continue
            out.append(_summary(table, name))
    return sorted(out, key=lambda t: t.identifier)


def describe_table(catalog: Catalog, identifier: str) -> TableDetail:
    table = _load(catalog, identifier)
    schema = table.schema()
    key_ids = set(schema.identifier_field_ids)
    columns = [
        Column(id=f.field_id, name=f.name, type=str(f.field_type), required=f.required,
               identifier=f.field_id in key_ids)
        for f in schema.fields
    ]
    spec = table.spec()
    partition = [f"{p.transform}({schema.find_column_name(p.source_id)})" for p in spec.fields]
    snapshots = sorted(table.snapshots(), key=lambda s: (s.timestamp_ms, s.sequence_number or 0), reverse=True)
    state = read_state(catalog, identifier)
    cursor = None if state is None else StoredCursor(field=state.cursor_field, value=json_safe(state.cursor_value))
    return TableDetail(
        **_summary(table, identifier).model_dump(),
        location=table.location(),
        metadata_location=table.metadata_location,
        format_version=table.format_version,
        columns=columns,
        identifier_fields=[schema.find_column_name(i) or str(i) for i in schema.identifier_field_ids],
        partition=partition,
        snapshots=[_snapshot(s) for s in snapshots],
        cursor=cursor,
    )


def preview_table(catalog: Catalog, identifier: str, limit: int) -> TablePreview:
    """The first ``limit`` live rows (position deletes applied) in the table's own order."""
    table = _load(catalog, identifier)
    data = table.scan(limit=limit).to_arrow()
    return TablePreview(
        identifier=identifier,
        columns=data.column_names,
        rows=[{k: json_safe(v) for k, v in row.items()} for row in data.slice(0, limit).to_pylist()],
    )


def source_of(properties: Mapping[str, str]) -> TableSource | None:
    source = TableSource(
        pipeline_id=_uuid(properties.get(PIPELINE_ID)),
        pipeline_name=properties.get(PIPELINE_NAME),
        connection_id=_uuid(properties.get(CONNECTION_ID)),
        stream=properties.get(SOURCE_STREAM),
    )
    return source if source.known else None


def json_safe(value: Any) -> Any:
    """A value from ``pyarrow``'s ``to_pylist`` as something ``json.dumps`` writes exactly."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        # A map column arrives as a list of (key, value) pairs: keep them as pairs.
        return [json_safe(v) for v in value]
    return str(value)


def _namespaces(catalog: Catalog) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    level = [tuple(ns) for ns in catalog.list_namespaces()]
    depth = 1
    while level and depth <= MAX_NAMESPACE_DEPTH:
        found.extend(level)
        children: list[tuple[str, ...]] = []
        for namespace in level:
            try:
                below = (tuple(c) for c in catalog.list_namespaces(namespace))
                # Only real children: a server that ignores `parent` answers every namespace.
                children.extend(c for c in below if len(c) > len(namespace) and c[:len(namespace)] == namespace)
            except NoSuchNamespaceError:
                continue
        level = children
        depth += 1
    return sorted(set(found))


def _load(catalog: Catalog, identifier: str) -> Table:
    namespace, name = split_identifier(identifier)
    try:
        return catalog.load_table((*namespace.split("."), name))
    except (NoSuchTableError, NoSuchNamespaceError) as exc:
        raise NotFoundError(
            f"no table {identifier!r} in the lakehouse catalog (parquet destinations write files, not catalog tables)"
        ) from exc


def _summary(table: Table, identifier: str) -> TableSummary:
    namespace, name = split_identifier(identifier)
    current = table.current_snapshot()
    return TableSummary(
        identifier=identifier,
        namespace=namespace,
        name=name,
        source=source_of(table.properties),
        current_snapshot_id=current.snapshot_id if current else None,
        row_count=_live_rows(current) if current else None,
        last_updated=dt.datetime.fromtimestamp(table.metadata.last_updated_ms / 1000, dt.UTC),
        last_run_id=_last_run_id(table),
    )


def _props(snapshot: Snapshot) -> Mapping[str, str]:
    return snapshot.summary.additional_properties if snapshot.summary else {}


def _int(props: Mapping[str, str], key: str) -> int | None:
    raw = props.get(key)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _live_rows(snapshot: Snapshot) -> int | None:
    props = _props(snapshot)
    total = _int(props, "total-records")
    if total is None:
        return None
    return total - (_int(props, "total-position-deletes") or 0)


def _last_run_id(table: Table) -> str | None:
    snapshot = table.current_snapshot()
    while snapshot is not None:
        run_id = _props(snapshot).get(RUN_ID)
        if run_id is not None:
            return run_id
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return None


def _snapshot(snapshot: Snapshot) -> SnapshotOut:
    props = _props(snapshot)
    added = _int(props, "added-records")
    removed_files = _int(props, "deleted-records")
    added_deletes = _int(props, "added-position-deletes")
    dropped_deletes = _int(props, "removed-position-deletes")
    deleted = None
    if any(v is not None for v in (removed_files, added_deletes)):
        # Rows of dropped files that earlier position deletes had already removed are not removed twice.
        deleted = max(0, (removed_files or 0) + (added_deletes or 0) - (dropped_deletes or 0))
    operation = snapshot.summary.operation.value if snapshot.summary else None
    return SnapshotOut(
        snapshot_id=snapshot.snapshot_id,
        parent_id=snapshot.parent_snapshot_id,
        committed_at=dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, dt.UTC),
        operation=operation,
        run_id=props.get(RUN_ID),
        added_rows=added,
        deleted_rows=deleted,
        total_rows=_live_rows(snapshot),
    )


def _uuid(raw: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None
