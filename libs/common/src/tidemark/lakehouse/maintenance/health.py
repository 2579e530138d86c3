"""A table's health: how many files a reader opens, how big they are, how many snapshots it keeps.

Blocking (reads the current snapshot's manifests): call it off the event loop.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from tidemark.lakehouse.maintenance.commit import MAINTENANCE
from tidemark.lakehouse.maintenance.compact import DEFAULT_COMPACT
from tidemark.lakehouse.maintenance.tables import load, translated


class TableHealth(BaseModel):
    identifier: str = Field(description="`namespace.table`.")
    data_files: int = Field(description="Data files of the current snapshot.")
    delete_files: int = Field(description="Position-delete files of the current snapshot; compaction folds them.")
    small_files: int = Field(description="Data files below the compaction's small-file size.")
    data_bytes: int = Field(description="Bytes of the data files.")
    delete_bytes: int = Field(description="Bytes of the delete files.")
    average_file_bytes: int = Field(description="Average data file size in bytes; 0 without files.")
    snapshots: int = Field(description="Snapshots the table keeps (expiry removes old ones).")
    oldest_snapshot_at: dt.datetime | None = Field(description="When the oldest kept snapshot was committed.")
    last_compaction: dt.datetime | None = Field(
        description="When the newest kept compaction snapshot was committed; null when none is kept.")


def table_health(catalog: Catalog, identifier: str, small_file_bytes: int = DEFAULT_COMPACT.small_file_bytes
                 ) -> TableHealth:
    table = load(catalog, identifier)
    with translated(identifier):
        return health_of(table, identifier, small_file_bytes)


def health_of(table: Table, identifier: str, small_file_bytes: int = DEFAULT_COMPACT.small_file_bytes
              ) -> TableHealth:
    tasks = list(table.scan().plan_files()) if table.current_snapshot() is not None else []
    deletes = {d.file_path: d.file_size_in_bytes for t in tasks for d in t.delete_files}
    data_bytes = sum(t.file.file_size_in_bytes for t in tasks)
    snapshots = table.metadata.snapshots
    compactions = [s.timestamp_ms for s in snapshots
                   if s.summary is not None and s.summary.additional_properties.get(MAINTENANCE) == "compact"]
    return TableHealth(
        identifier=identifier,
        data_files=len(tasks),
        delete_files=len(deletes),
        small_files=sum(1 for t in tasks if t.file.file_size_in_bytes < small_file_bytes),
        data_bytes=data_bytes,
        delete_bytes=sum(deletes.values()),
        average_file_bytes=data_bytes // len(tasks) if tasks else 0,
        snapshots=len(snapshots),
        oldest_snapshot_at=_at(min((s.timestamp_ms for s in snapshots), default=None)),
        last_compaction=_at(max(compactions, default=None)),
    )


def _at(ms: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC) if ms is not None else None
