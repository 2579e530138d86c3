"""The Iceberg writer: every Iceberg write in Tidemark goes through :func:`write_stream`.

Blocking (pyiceberg and pyarrow I/O): services call it in a worker thread, the
worker process calls it directly.

Memory stays bounded by ``chunk_bytes``: the input is written as Parquet data
files one chunk at a time, and the files are committed together in a single
snapshot (full refresh: one overwrite snapshot; append: one append snapshot).
Upserts merge chunk by chunk inside one transaction, so they too become
visible in one commit. Nothing is visible before the commit: a failure while
reading the source leaves the previous snapshot as the table's current state.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import requests
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    CommitStateUnknownException,
    ForbiddenError,
    NoSuchNamespaceError,
    NoSuchTableError,
    ServerError,
    TableAlreadyExistsError,
    UnauthorizedError,
    ValidationException,
)
from pyiceberg.io.pyarrow import _dataframe_to_data_files
from pyiceberg.manifest import DataFile
from pyiceberg.schema import assign_fresh_schema_ids
from pyiceberg.table import Table, Transaction
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.table.update.snapshot import _OverwriteFiles
from sqlalchemy.exc import IntegrityError, OperationalError

from tidemark.connectors.base import StreamState
from tidemark.errors import ConfigError, TransientError
from tidemark.events import PartitionField, SyncMode
from tidemark.lakehouse.batches import Feed, check_columns, chunks, writable_schema
from tidemark.lakehouse.datafiles import DataFileWriter
from tidemark.lakehouse.deletes import DeletesOverwrite
from tidemark.lakehouse.merge import Merger, row_numbers
from tidemark.lakehouse.partition import evolve_spec, new_spec, parts
from tidemark.lakehouse.reconcile import reconcile
from tidemark.lakehouse.request import DEFAULT_OPTIONS, WriteOptions, WriteRequest
from tidemark.lakehouse.schema import evolve, iceberg_schema, keyed_schema, required_as_in
from tidemark.lakehouse.settings import MergeStrategy
from tidemark.lakehouse.state import (
    CONNECTION_ID,
    CURSOR,
    CURSOR_FIELD,
    PIPELINE_NAME,
    RUN_ID,
    SOURCE_STREAM,
    WriteResult,
    state_from_properties,
    summary_properties,
)
from tidemark.logs import fields

log = logging.getLogger(__name__)


def write_stream(catalog: Catalog, request: WriteRequest, batches: Iterable[pa.RecordBatch],
                 options: WriteOptions = DEFAULT_OPTIONS) -> WriteResult:
    """Write ``batches`` to the table ``request.identifier`` in one commit and return what was committed.

    ``full_refresh`` replaces the table, ``incremental_append`` appends, ``incremental``
    upserts on ``primary_key``. The table (and namespace) is created on first write, with
    ``partition`` as its spec; new columns are added; an incompatible type change raises
    ConfigError naming the column. A ``partition`` different from the table's evolves the
    spec in the same commit; ``None`` keeps the table's spec. ``options.merge_strategy`` chooses
    how an incremental merge replaces rows of an unpartitioned table (see merge.py).

    A new table gets ``primary_key`` as its identifier fields (those columns required, every
    other column optional) and ``properties``; a table this call created is dropped again
    when its first write fails, so a failed first run leaves no empty table behind.
    """
    identifier = request.identifier
    target = writable_schema(request.schema)
    check_columns(target, identifier, request.primary_key, request.cursor_field)
    if request.mode is SyncMode.INCREMENTAL and not request.primary_key:
        raise ConfigError(f"table {identifier}: incremental (merge) needs a primary key")
    # Only catalog calls are translated: an OperationalError from the source is not the catalog's.
    with _translated(identifier):
        table, created = _load_or_create(catalog, identifier, target, request.partition or (), request.primary_key,
                                         request.properties)
    try:
        return _write(table, request, target, batches, options)
    except BaseException:
        if created:
            _drop_quietly(catalog, identifier)
        raise


def _write(table: Table, request: WriteRequest, target: pa.Schema, batches: Iterable[pa.RecordBatch],
           options: WriteOptions) -> WriteResult:
    identifier, mode, run_id = request.identifier, request.mode, request.run_id
    _check_owner(table, identifier, request.properties)
    target = required_as_in(target, table.schema())
    before = table.current_snapshot()
    feed = Feed(batches, target, request.cursor_field, request.final_cursor)
    txn = table.transaction()
    evolve(txn, target, identifier)
    if request.partition is not None:
        _evolve_partition(txn, request.partition, identifier)
    changed = {k: v for k, v in request.properties.items() if table.properties.get(k) != v}
    if changed:
        txn.set_properties(changed)
    written: list[DataFile] = []
    skipped = 0
    table_rows: int | None = None
    try:
        if mode is SyncMode.INCREMENTAL and not (request.unique_keys and _empty(before)):
            skipped = _upsert(txn, table, feed, request.primary_key, run_id, options.chunk_bytes,
                              options.upsert_chunk_rows, options.merge_strategy)
            # A merge replaces rows in place, so what it received is what can be checked.
            committing = feed.rows
        else:
            _write_files(txn, table, feed, options.chunk_bytes, written)
            committing = sum(f.record_count for f in written)
            props = summary_properties(run_id, feed.cursor)
            if mode is SyncMode.FULL_REFRESH:
                _replace(txn, table, written, props)
                table_rows = _total(txn.table_metadata.current_snapshot(), "total-records")
            elif written:
                # An append, or the first merge into an empty table: with unique keys there is nothing to
                # replace, so it costs what a full refresh does (no snapshot per chunk, no key lookups).
                with txn.update_snapshot(snapshot_properties=props).fast_append() as append:
                    for data_file in written:
                        append.append_data_file(data_file)
        rows_read = reconcile(identifier, request.rows_read, committing, table_rows)
        with _translated(identifier):
            committed = txn.commit_transaction()
    except BaseException:
        # Files of a failed write are referenced by no snapshot; remove what we can.
        _delete_quietly(table, written)
        raise
    snapshot = committed.current_snapshot()
    new = snapshot is not None and (before is None or snapshot.snapshot_id != before.snapshot_id)
    result = WriteResult(
        rows_written=feed.rows - skipped,
        bytes_written=_added_bytes(committed, before.snapshot_id if before else None),
        snapshot_id=snapshot.snapshot_id if new and snapshot is not None else None,
        cursor_value=feed.cursor.value,
        data_files=_total(snapshot, "total-data-files"),
        delete_files=_total(snapshot, "total-delete-files"),
        files_bytes=_total(snapshot, "total-files-size"),
        rows_read=rows_read, rows_committed=committing, table_rows=table_rows,
    )
    log.info("table written", extra=fields(table=identifier, mode=mode.value, rows=result.rows_written,
                                           snapshot_id=result.snapshot_id))
    return result


def _empty(snapshot: Snapshot | None) -> bool:
    """Whether the table holds no row as of ``snapshot`` (no snapshot, or one with no records)."""
    if snapshot is None:
        return True
    summary = snapshot.summary.additional_properties if snapshot.summary else {}
    return summary.get("total-records") == "0"


@contextlib.contextmanager
def catalog_errors(identifier: str, warehouse: str = "cannot write table metadata to the warehouse") -> Iterator[None]:
    """Catalog and storage failures as Tidemark errors (``warehouse`` says what an OSError stopped).
    A commit conflict (CommitFailedException, ValidationException) passes through: the caller decides
    what it means."""
    try:
        yield
    except OperationalError as exc:
        raise TransientError(f"table {identifier}: the Iceberg catalog database is unavailable") from exc
    except (UnauthorizedError, ForbiddenError) as exc:
        raise ConfigError(f"table {identifier}: the Iceberg REST catalog refused our credentials") from exc
    except (ServerError, CommitStateUnknownException, requests.RequestException) as exc:
        raise TransientError(f"table {identifier}: the Iceberg REST catalog is unavailable") from exc
    except OSError as exc:
        raise TransientError(f"table {identifier}: {warehouse}: {exc}") from exc


@contextlib.contextmanager
def _translated(identifier: str) -> Iterator[None]:
    try:
        with catalog_errors(identifier):
            yield
    except (CommitFailedException, ValidationException) as exc:
        # pyiceberg already rebased what commutes (appends); what is left conflicts for real.
        raise TransientError(f"table {identifier}: another writer committed first; retry the run") from exc


def read_state(catalog: Catalog, identifier: str) -> StreamState | None:
    """The cursor the last Tidemark commit to ``identifier`` recorded, or None.

    Snapshots from other writers (compaction, maintenance) are skipped; the newest
    Tidemark snapshot decides, even when it recorded no cursor (a full refresh).
    """
    try:
        with _translated(identifier):
            table = catalog.load_table(identifier)
    except (NoSuchTableError, NoSuchNamespaceError):
        return None
    props = _recorded(table)
    return None if props is None else state_from_properties(props)


def _recorded(table: Table) -> dict[str, str] | None:
    """The summary of the newest snapshot a Tidemark run committed; None when there is none."""
    snapshot = table.current_snapshot()
    while snapshot is not None:
        props = snapshot.summary.additional_properties if snapshot.summary else {}
        if RUN_ID in props:
            return props
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return None


def _split(identifier: str) -> tuple[str, str]:
    namespace, _, name = identifier.rpartition(".")
    if not namespace or not name:
        raise ConfigError(f"table identifier {identifier!r} must be `namespace.table`")
    return namespace, name


def _load_or_create(catalog: Catalog, identifier: str, schema: pa.Schema, partition: Sequence[PartitionField],
                    primary_key: Sequence[str], properties: Mapping[str, str]) -> tuple[Table, bool]:
    """The table, and whether this call created it."""
    namespace, _ = _split(identifier)
    try:
        return catalog.load_table(identifier), False
    except (NoSuchTableError, NoSuchNamespaceError):
        pass
    fresh = keyed_schema(assign_fresh_schema_ids(iceberg_schema(schema, identifier)), primary_key)
    spec = new_spec(parts(partition, fresh, identifier), fresh)
    # Another writer (a stream of the same run) may create it between the check and the insert.
    with contextlib.suppress(IntegrityError):
        catalog.create_namespace_if_not_exists(namespace)
    log.info("creating table", extra=fields(table=identifier, partition=str(spec)))
    try:
        return catalog.create_table(identifier, schema=fresh, partition_spec=spec, properties=dict(properties)), True
    except TableAlreadyExistsError:
        return catalog.load_table(identifier), False  # another writer created it first


def _check_owner(table: Table, identifier: str, properties: Mapping[str, str]) -> None:
    """Refuse to write rows of one source stream into a table that holds another's."""
    for key in (SOURCE_STREAM, CONNECTION_ID):
        mine, theirs = properties.get(key), table.properties.get(key)
        if mine is not None and theirs is not None and mine != theirs:
            owner = table.properties.get(PIPELINE_NAME, "another pipeline")
            raise ConfigError(
                f"table {identifier} holds stream {table.properties.get(SOURCE_STREAM)!r} of pipeline {owner!r}, "
                f"not {properties.get(SOURCE_STREAM)!r}; refusing to overwrite it (choose another namespace or "
                "table_prefix)",
                table=identifier,
            )


def _drop_quietly(catalog: Catalog, identifier: str) -> None:
    """Drop a table this write created, unless someone committed to it meanwhile."""
    try:
        table = catalog.load_table(identifier)
        if table.current_snapshot() is None:
            catalog.drop_table(identifier)
            log.info("dropped the table this failed first write created", extra=fields(table=identifier))
    except Exception:  # the write's own error is the one to report
        log.warning("could not drop the empty table of a failed first write", extra=fields(table=identifier),
                    exc_info=True)


def _evolve_partition(txn: Transaction, partition: Sequence[PartitionField], identifier: str) -> None:
    items = parts(partition, txn.table_metadata.schema(), identifier)
    try:
        changed = evolve_spec(txn, items)
    except ValueError as exc:
        raise ConfigError(f"table {identifier}: cannot change the partition spec: {exc}") from exc
    if changed:
        log.info("partition spec changed", extra=fields(table=identifier, partition=str(txn.table_metadata.spec())))


def _write_files(txn: Transaction, table: Table, feed: Feed, chunk_bytes: int, written: list[DataFile]) -> None:
    """Write the feed as data files into ``written``, one bounded chunk at a time; commit nothing."""
    if txn.table_metadata.spec().is_unpartitioned():
        # One file per chunk: small enough that a merge rewrites little more than the rows it changes.
        writer = DataFileWriter(txn.table_metadata, table.io, feed.schema, written, target_bytes=chunk_bytes)
        try:
            # Only the writer's OSErrors are the warehouse's: the source's own (a reset connection) pass as they are.
            for group in chunks(feed, chunk_bytes):
                with _warehouse_errors():
                    writer.write(group)
            with _warehouse_errors():
                writer.close()
        except BaseException:
            writer.abort()
            raise
        return
    write_uuid = uuid.uuid4()
    counter = itertools.count(0)
    for group in chunks(feed, chunk_bytes):
        data = pa.Table.from_batches(group, schema=feed.schema)
        try:
            written.extend(_dataframe_to_data_files(
                table_metadata=txn.table_metadata, df=data, io=table.io, write_uuid=write_uuid, counter=counter,
            ))
        except OSError as exc:
            raise TransientError(f"cannot write data files to the warehouse: {exc}") from exc


@contextlib.contextmanager
def _warehouse_errors() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise TransientError(f"cannot write data files to the warehouse: {exc}") from exc


def _replace(txn: Transaction, table: Table, written: list[DataFile], props: dict[str, str]) -> None:
    """One overwrite snapshot: drop every current data file (and delete file), add the new ones."""
    tasks = list(table.scan().plan_files()) if table.current_snapshot() is not None else []
    overwrite: _OverwriteFiles
    if any(task.delete_files for task in tasks):
        # Merge-on-read left position deletes: the replacement folds them away with their data files.
        overwrite = DeletesOverwrite(txn, table.io, [], drop_deletes=True, snapshot_properties=props)
    else:
        overwrite = txn.update_snapshot(snapshot_properties=props).overwrite()
    with overwrite:
        for task in tasks:
            overwrite.delete_data_file(task.file)
        for data_file in written:
            overwrite.append_data_file(data_file)


def _upsert(txn: Transaction, table: Table, feed: Feed, primary_key: Sequence[str], run_id: str,
            chunk_bytes: int, chunk_rows: int, strategy: MergeStrategy) -> int:
    """Merge the feed; return how many of its rows were left out because the table already held them."""
    keys = list(primary_key)
    recorded = _recorded(table) if table.current_snapshot() is not None else None
    seen = _seen_through(recorded, feed)
    # Unpartitioned tables merge by rewriting only the files a chunk touches (see merge.py), in chunks
    # bounded by bytes alone, since each chunk may rewrite files; partitioned ones use pyiceberg's upsert.
    merger = None
    if txn.table_metadata.spec().is_unpartitioned():
        # Position deletes need format v2; older tables merge copy-on-write.
        on_read = strategy == "merge_on_read" and txn.table_metadata.format_version >= 2
        merger = Merger(txn, table, keys, feed.schema, chunk_bytes, merge_on_read=on_read)
    try:
        skipped = _merge_chunks(txn, feed, keys, merger, seen, run_id, chunk_bytes, chunk_rows)
    finally:
        if merger is not None:
            merger.close()
    if feed.rows == 0:
        return skipped
    final = summary_properties(run_id, feed.cursor)
    staged = txn.table_metadata.current_snapshot()
    base = table.current_snapshot()
    unchanged = staged is None or (base is not None and staged.snapshot_id == base.snapshot_id)
    if unchanged and recorded is not None and all(
            recorded.get(k) == final.get(k) for k in (CURSOR, CURSOR_FIELD)):
        # Nothing changed and the state is the one already committed: a snapshot would say nothing.
        return skipped
    staged_cursor = staged.summary.additional_properties.get(CURSOR) if staged and staged.summary else None
    if unchanged or staged_cursor != final.get(CURSOR):
        # The last chunks changed nothing, so no snapshot carries the final cursor yet:
        # an empty append records it, keeping the state in the table.
        with txn.update_snapshot(snapshot_properties=final).fast_append():
            pass
    return skipped


def _merge_chunks(txn: Transaction, feed: Feed, keys: list[str], merger: Merger | None, seen: Any, run_id: str,
                  chunk_bytes: int, chunk_rows: int) -> int:
    skipped = 0
    for group in chunks(feed, chunk_bytes, None if merger else chunk_rows):
        data = _last_per_key(pa.Table.from_batches(group, schema=feed.schema), keys)
        # Each chunk sees the chunks before it (they are staged in txn), so later rows win.
        props = summary_properties(run_id, feed.cursor)
        if merger is not None and merger.merge_on_read:
            with _warehouse_errors():
                skipped += merger.merge_checked(data, feed.cursor.field, seen, props)
        elif merger is not None:
            with _warehouse_errors():
                if seen is not None and feed.cursor.field is not None:
                    kept = merger.without_unchanged(data, feed.cursor.field, seen)
                    skipped += data.num_rows - kept.num_rows
                    data = kept
                if data.num_rows:
                    merger.merge(data, props)
        else:
            # pyiceberg's upsert already leaves rows equal to the table's alone.
            txn.upsert(data, join_cols=keys, snapshot_properties=props)
    return skipped


def _seen_through(recorded: Mapping[str, str] | None, feed: Feed) -> Any:
    """The cursor value the table's rows were read up to, when it is this feed's cursor; else None.

    The table holds no row whose cursor is beyond it, so only rows at or below it (the boundary
    an incremental read takes again, and its lookback window) can already be in the table as they are.
    """
    if recorded is None or feed.cursor.field is None or recorded.get(CURSOR_FIELD) != feed.cursor.field:
        return None
    state = state_from_properties(recorded)
    return None if state is None else state.cursor_value


def _last_per_key(data: pa.Table, keys: list[str]) -> pa.Table:
    """Keep the last row of each key: a source may return a key twice, and pyiceberg refuses that."""
    if data.num_rows < 2:
        return data
    index = "__tidemark_row"
    numbered = data.append_column(index, row_numbers(data.num_rows))
    last = numbered.group_by(keys, use_threads=False).aggregate([(index, "max")])[f"{index}_max"]
    if len(last) == data.num_rows:
        return data
    return data.take(pc.take(last, pc.sort_indices(last)))


def _total(snapshot: Snapshot | None, key: str) -> int | None:
    raw = snapshot.summary.additional_properties.get(key) if snapshot is not None and snapshot.summary else None
    return int(raw) if raw is not None and raw.isdigit() else None


def _added_bytes(table: Table, since: int | None) -> int:
    """Bytes of data files added by the snapshots committed after ``since``."""
    total = 0
    snapshot = table.current_snapshot()
    while snapshot is not None and snapshot.snapshot_id != since:
        if snapshot.summary is not None:
            total += int(snapshot.summary.additional_properties.get("added-files-size", 0) or 0)
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return total


def _delete_quietly(table: Table, files: list[DataFile]) -> None:
    for data_file in files:
        try:
            table.io.delete(data_file.file_path)
        except OSError:
            log.warning("could not remove an uncommitted data file", extra=fields(path=data_file.file_path))
