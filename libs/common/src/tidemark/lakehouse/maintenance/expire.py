"""Snapshot expiry: drop old snapshots from the table's metadata and delete the files only they held.

Kept: every snapshot younger than ``older_than``, the newest ``keep_last``, the heads of branches and
tags, and every snapshot from the current one down to the newest one that carries Tidemark's state
(run id and cursor), so :func:`tidemark.lakehouse.read_state` finds the same cursor after expiry.
The metadata commit applies on the catalog's newest metadata, so a concurrent ingestion commit stays;
when the catalog refuses it (a concurrent commit changed the metadata file), expiry plans again.
Files are deleted after the commit, and only those no kept snapshot (read after the commit) holds.
Blocking: call it off the event loop.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

from tidemark.errors import TransientError
from tidemark.lakehouse.maintenance.files import referenced
from tidemark.lakehouse.maintenance.tables import load, translated
from tidemark.lakehouse.state import RUN_ID
from tidemark.logs import fields

log = logging.getLogger(__name__)

ATTEMPTS = 3


@dataclass(frozen=True)
class ExpireOptions:
    older_than: dt.timedelta = dt.timedelta(days=7)
    keep_last: int = 10


DEFAULT_EXPIRE = ExpireOptions()


@dataclass(frozen=True)
class ExpireResult:
    table: str
    dry_run: bool
    snapshots_before: int
    snapshots_after: int
    expired: list[int] = field(default_factory=list)
    state_snapshot_id: int | None = None
    files_deleted: int = 0
    bytes_deleted: int = 0


def snapshots_to_expire(table: Table, options: ExpireOptions, now: dt.datetime) -> tuple[list[int], int | None]:
    """The snapshots expiry would remove, and the snapshot holding the table's state (always kept)."""
    metadata = table.metadata
    snapshots = sorted(metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0), reverse=True)
    cutoff_ms = int(now.timestamp() * 1000) - int(options.older_than.total_seconds() * 1000)
    keep = {s.snapshot_id for s in snapshots[:max(options.keep_last, 1)]}
    keep |= {s.snapshot_id for s in snapshots if s.timestamp_ms >= cutoff_ms}
    keep |= {ref.snapshot_id for ref in metadata.refs.values()}
    state_id = None
    snapshot = table.current_snapshot()
    while snapshot is not None:
        keep.add(snapshot.snapshot_id)
        if snapshot.summary is not None and RUN_ID in snapshot.summary.additional_properties:
            state_id = snapshot.snapshot_id
            break
        parent = snapshot.parent_snapshot_id
        snapshot = metadata.snapshot_by_id(parent) if parent is not None else None
    return sorted(s.snapshot_id for s in snapshots if s.snapshot_id not in keep), state_id


def expire_snapshots(catalog: Catalog, identifier: str, options: ExpireOptions = DEFAULT_EXPIRE,
                     dry_run: bool = False, now: dt.datetime | None = None) -> ExpireResult:
    now = now or dt.datetime.now(dt.UTC)
    for attempt in range(1, ATTEMPTS + 1):
        table = load(catalog, identifier)
        before = len(table.metadata.snapshots)
        expired, state_id = snapshots_to_expire(table, options, now)
        if dry_run or not expired:
            return ExpireResult(identifier, dry_run, before, before - len(expired) if dry_run else before,
                                expired, state_id)
        gone = {s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id in set(expired)}
        manifests: dict[str, list[tuple[str, int]]] = {}
        with translated(identifier):
            held = referenced(table.io, (s for s in table.metadata.snapshots if s.snapshot_id in gone), manifests)
        try:
            with translated(identifier):
                table.maintenance.expire_snapshots().by_ids(expired).commit()
        except CommitFailedException:
            log.info("snapshot expiry met a concurrent commit; planning again",
                     extra=fields(table=identifier, attempt=attempt))
            continue
        fresh = load(catalog, identifier)
        with translated(identifier):
            kept = referenced(fresh.io, fresh.metadata.snapshots, manifests)
        doomed = {path: size for path, size in held.sizes.items() if path not in kept.sizes}
        deleted = _delete(fresh, doomed)
        result = ExpireResult(identifier, False, before, len(fresh.metadata.snapshots), expired, state_id,
                              files_deleted=len(deleted), bytes_deleted=sum(doomed[p] for p in deleted))
        log.info("snapshots expired", extra=fields(table=identifier, expired=len(expired),
                                                   files_deleted=result.files_deleted))
        return result
    raise TransientError(f"table {identifier}: snapshot expiry kept meeting concurrent commits; try again")


def _delete(table: Table, doomed: dict[str, int]) -> list[str]:
    deleted = []
    for path in sorted(doomed):
        try:
            table.io.delete(path)
        except FileNotFoundError:
            continue
        except OSError:
            log.warning("could not delete an expired file; orphan cleanup retries it", extra=fields(path=path))
            continue
        deleted.append(path)
    return deleted
