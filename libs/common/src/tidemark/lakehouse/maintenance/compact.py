"""Compaction: rewrite small data files into larger ones and fold position deletes into their data, in one snapshot.

A plan (:func:`plan_compaction`, also the dry run) picks, per partition, every data file that has
delete files and, where at least ``min_small_files`` data files are small, those small files. The
rewrite (:func:`run_compaction`) reads each picked file with its deletes applied, one bounded chunk
at a time, writes the rows as new files of about ``target_file_bytes``, and commits one overwrite
snapshot for the whole table (see commit.py for the concurrency rules). The snapshot carries the
table's Tidemark state (run id, cursor), so the incremental state stays in the newest snapshot.

When another writer changed a picked file meanwhile, the commit fails validation: the plan is made
again from the fresh table, up to ``attempts`` times, and then the compaction is abandoned. The other
writer's commit always stands. Blocking: call it off the event loop.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files, _read_all_delete_files
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table
from pyiceberg.typedef import Record

from tidemark.lakehouse.batches import chunks
from tidemark.lakehouse.datafiles import DataFileWriter
from tidemark.lakehouse.maintenance.commit import MAINTENANCE, CompactionOverwrite
from tidemark.lakehouse.maintenance.tables import load, translated
from tidemark.logs import fields

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# Rows are handed to the writer in groups of at most this much Arrow data (each a row group of the file
# being written, which closes at the target size): what compaction holds at once, not the file size.
REWRITE_CHUNK_BYTES = 32 * MIB


@dataclass(frozen=True)
class CompactOptions:
    """``target_file_bytes`` is the Arrow size of a written file (on disk it is smaller, compressed);
    a data file is small below ``small_file_bytes`` on disk."""

    target_file_bytes: int = 128 * MIB
    small_file_bytes: int = 32 * MIB
    min_small_files: int = 5
    compact_small_files: bool = True
    fold_deletes: bool = True
    attempts: int = 3


DEFAULT_COMPACT = CompactOptions()


@dataclass(frozen=True)
class CompactionPlan:
    identifier: str
    snapshot_id: int | None
    data_files: int
    delete_files: int
    rewrite: list[FileScanTask] = field(default_factory=list)
    fold: list[str] = field(default_factory=list)  # delete files that disappear with the rewrite

    @property
    def empty(self) -> bool:
        return not self.rewrite

    @property
    def bytes_to_rewrite(self) -> int:
        data = sum(t.file.file_size_in_bytes for t in self.rewrite)
        deletes = {d.file_path: d.file_size_in_bytes for t in self.rewrite for d in t.delete_files}
        return data + sum(deletes.values())


@dataclass(frozen=True)
class CompactResult:
    table: str
    dry_run: bool
    data_files_before: int
    delete_files_before: int
    data_files_after: int
    delete_files_after: int
    files_rewritten: int
    delete_files_folded: int
    bytes_rewritten: int
    bytes_written: int
    snapshot_id: int | None
    abandoned: bool = False
    attempts: int = 0
    seconds: float = 0.0


def plan_compaction(table: Table, identifier: str, options: CompactOptions = DEFAULT_COMPACT) -> CompactionPlan:
    """What a compaction of ``table``'s current snapshot would rewrite."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return CompactionPlan(identifier, None, 0, 0)
    tasks = list(table.scan().plan_files())
    groups: dict[tuple[int, Record], list[FileScanTask]] = {}
    for task in tasks:
        groups.setdefault((task.file.spec_id, task.file.partition), []).append(task)
    chosen: list[FileScanTask] = []
    for group in groups.values():
        small = [t for t in group if t.file.file_size_in_bytes < options.small_file_bytes]
        with_deletes = [t for t in group if t.delete_files] if options.fold_deletes else []
        picked = {id(t) for t in with_deletes}
        if options.compact_small_files and len(small) >= options.min_small_files:
            picked |= {id(t) for t in small}
        elif with_deletes and options.compact_small_files:
            # The group is rewritten anyway: take its small files along, they cost little.
            picked |= {id(t) for t in small}
        if len(picked) == 1 and not with_deletes:
            continue
        chosen.extend(t for t in group if id(t) in picked)
    rewritten = {t.file.file_path for t in chosen}
    kept_deletes = {d.file_path for t in tasks if t.file.file_path not in rewritten for d in t.delete_files}
    fold = sorted({d.file_path for t in chosen for d in t.delete_files} - kept_deletes)
    all_deletes = {d.file_path for t in tasks for d in t.delete_files}
    return CompactionPlan(identifier, snapshot.snapshot_id, len(tasks), len(all_deletes), chosen, fold)


def compact_table(catalog: Catalog, identifier: str, options: CompactOptions = DEFAULT_COMPACT,
                  dry_run: bool = False) -> CompactResult:
    """Compact ``identifier`` (see the module), or with ``dry_run`` only say what it would rewrite."""
    started = time.monotonic()
    table = load(catalog, identifier)
    plan = plan_compaction(table, identifier, options)
    if dry_run or plan.empty:
        return _result(plan, plan, dry_run=dry_run, written=[], snapshot_id=None, attempts=0, started=started)
    return run_compaction(catalog, table, plan, options, started)


def run_compaction(catalog: Catalog, table: Table, plan: CompactionPlan, options: CompactOptions = DEFAULT_COMPACT,
                   started: float | None = None) -> CompactResult:
    """Carry out ``plan`` (made from ``table``); on a conflict plan again from the fresh table."""
    started = time.monotonic() if started is None else started
    first = plan
    for attempt in range(1, options.attempts + 1):
        written: list[DataFile] = []
        try:
            with translated(plan.identifier):
                _rewrite(table, plan, options, written)
        except BaseException:
            _delete_quietly(table, written)  # in no snapshot yet
            raise
        try:
            snapshot_id = _commit(table, plan, written)
        except (ValidationException, CommitFailedException) as exc:
            # The commit surely did not land: the new files are nobody's.
            _delete_quietly(table, written)
            log.warning("compaction conflicted with another commit", extra=fields(
                table=plan.identifier, attempt=attempt, error=str(exc)))
            table = load(catalog, plan.identifier)
            plan = plan_compaction(table, plan.identifier, options)
            if plan.empty:
                return _result(first, plan, dry_run=False, written=[], snapshot_id=None, attempts=attempt,
                               started=started)
            continue
        # Any other failure leaves the outcome unknown (the files may be committed): they stay, and orphan
        # cleanup removes them later if no snapshot took them.
        result = _result(plan, None, dry_run=False, written=written, snapshot_id=snapshot_id, attempts=attempt,
                         started=started, table=load(catalog, plan.identifier))
        log.info("table compacted", extra=fields(
            table=plan.identifier, files_before=result.data_files_before, files_after=result.data_files_after,
            deletes_folded=result.delete_files_folded, seconds=round(result.seconds, 3)))
        return result
    log.warning("compaction abandoned after repeated conflicts", extra=fields(table=plan.identifier))
    return _result(first, plan, dry_run=False, written=[], snapshot_id=None, attempts=options.attempts,
                   started=started, abandoned=True)


def _rewrite(table: Table, plan: CompactionPlan, options: CompactOptions, written: list[DataFile]) -> None:
    metadata = table.metadata
    if metadata.spec().is_unpartitioned():
        writer: DataFileWriter | None = None
        try:
            for group in chunks(_rows(table, plan.rewrite), min(options.target_file_bytes, REWRITE_CHUNK_BYTES)):
                writer = writer or DataFileWriter(metadata, table.io, group[0].schema, written,
                                                  target_bytes=options.target_file_bytes)
                writer.write(group)
            if writer is not None:
                writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        return
    # Partitioned: pyiceberg's writer splits each bounded chunk by the table's current spec.
    write_uuid, counter = uuid.uuid4(), itertools.count(0)
    by_partition: dict[tuple[int, Record], list[FileScanTask]] = {}
    for task in plan.rewrite:
        by_partition.setdefault((task.file.spec_id, task.file.partition), []).append(task)
    for tasks in by_partition.values():
        for group in chunks(_rows(table, tasks), options.target_file_bytes):
            data = pa.Table.from_batches(group)
            written.extend(_dataframe_to_data_files(table_metadata=metadata, df=data, io=table.io,
                                                    write_uuid=write_uuid, counter=counter))


def _rows(table: Table, tasks: list[FileScanTask]) -> Iterator[pa.RecordBatch]:
    """The live rows of each task's file, batch by batch (a whole file is never held at once)."""
    scan = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    for task in tasks:
        deletes = _read_all_delete_files(table.io, [task]) if task.delete_files else {}
        yield from scan._record_batches_from_scan_tasks_and_deletes([task], deletes)


def _commit(table: Table, plan: CompactionPlan, written: list[DataFile]) -> int:
    txn = table.transaction()
    overwrite = CompactionOverwrite(txn, table.io, plan.fold, {MAINTENANCE: "compact"})
    with overwrite:
        for task in plan.rewrite:
            overwrite.delete_data_file(task.file)
        for data_file in written:
            overwrite.append_data_file(data_file)
    with translated(plan.identifier):
        txn.commit_transaction()
    return overwrite.snapshot_id


def _result(before: CompactionPlan, after: CompactionPlan | None, *, dry_run: bool, written: list[DataFile],
            snapshot_id: int | None, attempts: int, started: float, table: Table | None = None,
            abandoned: bool = False) -> CompactResult:
    if table is not None:
        after = plan_compaction(table, before.identifier, CompactOptions(compact_small_files=False,
                                                                           fold_deletes=False))
    done = bool(written) or snapshot_id is not None
    rewritten = before.rewrite if done else []
    return CompactResult(
        table=before.identifier,
        dry_run=dry_run,
        data_files_before=before.data_files,
        delete_files_before=before.delete_files,
        data_files_after=after.data_files if after is not None else before.data_files,
        delete_files_after=after.delete_files if after is not None else before.delete_files,
        files_rewritten=len(rewritten) if not dry_run else len(before.rewrite),
        delete_files_folded=len(before.fold) if (done or dry_run) else 0,
        bytes_rewritten=before.bytes_to_rewrite if (done or dry_run) else 0,
        bytes_written=sum(f.file_size_in_bytes for f in written),
        snapshot_id=snapshot_id,
        abandoned=abandoned,
        attempts=attempts,
        seconds=time.monotonic() - started,
    )


def _delete_quietly(table: Table, files: list[DataFile]) -> None:
    for data_file in files:
        with contextlib.suppress(OSError):
            table.io.delete(data_file.file_path)
