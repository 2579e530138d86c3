"""One maintenance pass over one table: the actions a user or a policy asks for, and what they did.

Blocking: call it off the event loop.
"""

from __future__ import annotations

import datetime as dt
from typing import get_args

from pydantic import BaseModel, Field
from pyiceberg.catalog import Catalog

from tidemark.events.contracts import MaintenanceAction, MaintenancePolicy, MaintenanceStats
from tidemark.lakehouse.maintenance.compact import CompactOptions, compact_table
from tidemark.lakehouse.maintenance.expire import ExpireOptions, expire_snapshots
from tidemark.lakehouse.maintenance.orphans import DEFAULT_CLEAN, CleanOptions, clean_orphans
from tidemark.lakehouse.settings import LakehouseSettings

Action = MaintenanceAction
ACTIONS: tuple[Action, ...] = get_args(Action)


class MaintenanceReport(BaseModel):
    table: str
    dry_run: bool
    actions: list[str] = Field(description="The actions carried out (or, in a dry run, planned), in order.")
    data_files_before: int | None = None
    data_files_after: int | None = None
    delete_files_before: int | None = None
    delete_files_after: int | None = None
    files_rewritten: int = Field(default=0, description="Data files compaction rewrote (or would).")
    delete_files_folded: int = Field(default=0, description="Delete files compaction folded away (or would).")
    bytes_rewritten: int = Field(default=0, description="Bytes of the files compaction read (or would).")
    compaction_abandoned: bool = Field(default=False,
                                       description="Compaction gave way to concurrent commits; the next pass retries.")
    snapshots_expired: int = 0
    snapshot_ids_expired: list[int] = Field(default_factory=list)
    files_deleted: int = Field(default=0, description="Files deleted by expiry and orphan cleanup (or that would be).")
    bytes_reclaimed: int = 0
    orphan_files: list[str] = Field(default_factory=list, description="Orphan files deleted (or that would be).")


def maintain_table(catalog: Catalog, settings: LakehouseSettings, identifier: str, action: Action = "all",
                   policy: MaintenancePolicy | None = None, dry_run: bool = False,
                   longest_run: dt.timedelta = DEFAULT_CLEAN.longest_run, now: dt.datetime | None = None
                   ) -> MaintenanceReport:
    """Run ``action`` on ``identifier`` (``all``: compact, then expire, then clean)."""
    policy = policy or MaintenancePolicy()
    report = MaintenanceReport(table=identifier, dry_run=dry_run, actions=[])
    if action in ("compact", "all"):
        options = CompactOptions(compact_small_files=policy.compact_small_files,
                                 fold_deletes=policy.compact_delete_files)
        done = compact_table(catalog, identifier, options, dry_run=dry_run)
        report.actions.append("compact")
        report.data_files_before, report.data_files_after = done.data_files_before, done.data_files_after
        report.delete_files_before, report.delete_files_after = done.delete_files_before, done.delete_files_after
        report.files_rewritten, report.delete_files_folded = done.files_rewritten, done.delete_files_folded
        report.bytes_rewritten, report.compaction_abandoned = done.bytes_rewritten, done.abandoned
    if action in ("expire", "all"):
        expired = expire_snapshots(catalog, identifier, ExpireOptions(dt.timedelta(days=policy.expire_days),
                                                                      policy.keep_snapshots), dry_run, now)
        report.actions.append("expire")
        report.snapshots_expired, report.snapshot_ids_expired = len(expired.expired), expired.expired
        report.files_deleted += expired.files_deleted
        report.bytes_reclaimed += expired.bytes_deleted
    if action in ("clean", "all"):
        options_clean = CleanOptions(dt.timedelta(days=policy.orphan_days), longest_run)
        cleaned = clean_orphans(catalog, settings, identifier, options_clean, dry_run, now)
        report.actions.append("clean")
        report.orphan_files = cleaned.files
        report.files_deleted += len(cleaned.files)
        report.bytes_reclaimed += cleaned.bytes
    return report


def stats(report: MaintenanceReport) -> MaintenanceStats:
    """The report as a run's stats carry it: numbers, without the lists of ids and paths."""
    return MaintenanceStats.model_validate(report.model_dump(exclude={"table", "snapshot_ids_expired",
                                                                      "orphan_files"}))


__all__ = ["ACTIONS", "Action", "MaintenancePolicy", "MaintenanceReport", "maintain_table", "stats"]
