"""Orphan cleanup: delete files under a table's location that no snapshot references.

Killed runs and failed commits leave data files, delete files and manifests that no snapshot holds.
A file is deleted only when it is unreferenced *and* older than the safety window, which is never
shorter than the longest a run may take (a running ingestion's files are unreferenced until it
commits). Only the table's ``data/`` and ``metadata/`` directories are looked at. For the Parquet
destination the same rule removes staging directories that killed runs left behind.

Works on every warehouse the lakehouse settings reach (local disk, S3, Azure) through the same
pyarrow filesystem the writer uses. Blocking: call it off the event loop.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyarrow import fs as pafs
from pyiceberg.catalog import Catalog

from tidemark.lakehouse.maintenance.files import metadata_files, referenced
from tidemark.lakehouse.maintenance.tables import load, translated
from tidemark.lakehouse.parquet import ParquetLocation
from tidemark.lakehouse.settings import LakehouseSettings
from tidemark.lakehouse.storage import TidemarkFileIO, list_files, warehouse_filesystem
from tidemark.logs import fields

log = logging.getLogger(__name__)

WATCHED = ("data", "metadata")


@dataclass(frozen=True)
class CleanOptions:
    """``longest_run``: the longest a run of this table may take (its pipeline's timeout); the window
    is never shorter."""

    older_than: dt.timedelta = dt.timedelta(days=3)
    longest_run: dt.timedelta = dt.timedelta(days=1)

    @property
    def window(self) -> dt.timedelta:
        return max(self.older_than, self.longest_run)


DEFAULT_CLEAN = CleanOptions()


@dataclass(frozen=True)
class CleanResult:
    table: str
    dry_run: bool
    window_seconds: float
    files: list[str] = field(default_factory=list)  # deleted, or with dry_run: would be
    bytes: int = 0
    unreferenced_recent: int = 0  # unreferenced but inside the window: left alone


def clean_orphans(catalog: Catalog, settings: LakehouseSettings, identifier: str,
                  options: CleanOptions = DEFAULT_CLEAN, dry_run: bool = False,
                  now: dt.datetime | None = None) -> CleanResult:
    """Delete (or with ``dry_run`` list) the orphan files of the Iceberg table ``identifier``."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - options.window
    table = load(catalog, identifier)
    with translated(identifier):
        # Listed before the references are read: a file committed in between is then referenced, never orphaned.
        fs, root = warehouse_filesystem(settings, table.location())
        listed = [info for sub in WATCHED for info in list_files(fs, f"{root}/{sub}")]
        table = load(catalog, identifier)
        uris = referenced(table.io, table.metadata.snapshots).paths
        uris |= metadata_files(table.metadata, table.metadata_location)
    io = TidemarkFileIO(settings.file_io_properties())
    known = {io.parse_location(uri)[2].rstrip("/") for uri in uris}
    orphans, recent = [], 0
    for info in listed:
        if info.path.rstrip("/") in known:
            continue
        if info.mtime is None or _utc(info.mtime) > cutoff:
            recent += 1
            continue
        orphans.append(info)
    deleted = orphans if dry_run else _delete(fs, orphans, identifier)
    result = CleanResult(identifier, dry_run, options.window.total_seconds(), sorted(i.path for i in deleted),
                         sum(i.size or 0 for i in deleted), recent)
    if not dry_run:
        log.info("orphan files removed", extra=fields(table=identifier, files=len(result.files), bytes=result.bytes))
    return result


def clean_parquet_staging(settings: LakehouseSettings, identifier: str, options: CleanOptions = DEFAULT_CLEAN,
                          dry_run: bool = False, now: dt.datetime | None = None) -> CleanResult:
    """Delete (or list) the staging directories of the Parquet table ``identifier`` whose newest file is
    older than the window: what killed runs left."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - options.window
    loc = ParquetLocation(settings, identifier)
    prefix = f"{loc.staging_root}/{loc.name}-"
    with translated(identifier):
        files = [i for i in list_files(loc.fs, loc.staging_root) if i.path.startswith(prefix)]
    by_dir: dict[str, list[pafs.FileInfo]] = {}
    for info in files:
        directory = info.path[:len(prefix)] + info.path[len(prefix):].split("/", 1)[0]
        by_dir.setdefault(directory, []).append(info)
    stale, recent = [], 0
    for directory, infos in sorted(by_dir.items()):
        if all(i.mtime is not None and _utc(i.mtime) <= cutoff for i in infos):
            stale.append((directory, infos))
        else:
            recent += len(infos)
    if not dry_run:
        with translated(identifier):
            for directory, _ in stale:
                loc.fs.delete_dir(directory)
    gone = [i for _, infos in stale for i in infos]
    return CleanResult(identifier, dry_run, options.window.total_seconds(), sorted(i.path for i in gone),
                       sum(i.size or 0 for i in gone), recent)


def _delete(fs: pafs.FileSystem, orphans: Sequence[pafs.FileInfo], identifier: str) -> list[pafs.FileInfo]:
    deleted = []
    for info in orphans:
        try:
            fs.delete_file(info.path)
        except FileNotFoundError:
            continue
        except OSError:
            log.warning("could not delete an orphan file", extra=fields(table=identifier, path=info.path))
            continue
        deleted.append(info)
    return deleted


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
