"""Plain Parquet output, through the same chunking, schema and state rules as Iceberg.

Layout under the warehouse (local disk, S3 or Azure: the same pyarrow filesystem Iceberg uses)::

    parquet/<namespace>/<table>/[<key>=<value>/...]part-<run>-<n>.parquet   the data readers see
    parquet/<namespace>/<table>/_tidemark_state.json      run id, cursor, partition layout (hidden from readers)
    parquet/<namespace>/_staging/<table>-<run>/           files being written

Partitioned tables use hive-style directories (see :mod:`tidemark.lakehouse.partition`).

A run writes into its staging directory first; a failure there leaves the table
untouched. On a local disk, full refresh then swaps the staging directory in for
the table directory (two renames: readers never see a mix of old and new files).
Object stores cannot rename: there the new files are copied in, the state file is
replaced, and only then are the old files deleted, so for that short moment a
reader may see both. Append moves the new files in and replaces the state file last,
so a crash in between re-reads rows next run rather than skipping them.

Blocking: call it off the event loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs
from pyiceberg.schema import assign_fresh_schema_ids
from pyiceberg.transforms import IdentityTransform

from tidemark.connectors.base import StreamState
from tidemark.errors import ConfigError, TransientError
from tidemark.events import PartitionField, SyncMode
from tidemark.lakehouse.batches import Feed, check_columns, chunks, writable_schema
from tidemark.lakehouse.partition import Part, described, parts, split
from tidemark.lakehouse.reconcile import reconcile
from tidemark.lakehouse.request import DEFAULT_OPTIONS, WriteOptions, WriteRequest
from tidemark.lakehouse.schema import check_compatible, iceberg_schema
from tidemark.lakehouse.settings import LakehouseSettings
from tidemark.lakehouse.state import WriteResult, state_from_properties, summary_properties
from tidemark.lakehouse.storage import is_local, list_files, move_file, warehouse_filesystem
from tidemark.logs import fields

log = logging.getLogger(__name__)

STATE_FILE = "_tidemark_state.json"
PARTITION = "tidemark.partition"
DELETE_THREADS = 8


class ParquetLocation:
    def __init__(self, settings: LakehouseSettings, identifier: str) -> None:
        if not settings.warehouse:
            raise ConfigError("lakehouse: warehouse is empty; resolve the settings against a home")
        namespace, _, table = identifier.rpartition(".")
        names = [*namespace.split("."), table]
        if not namespace or any(p in {"", ".", ".."} or "/" in p or "\\" in p for p in names):
            raise ConfigError(f"table identifier {identifier!r} is not a safe `namespace.table` path")
        self.fs, root = warehouse_filesystem(settings)
        base = f"{root}/parquet/{'/'.join(names[:-1])}"
        self.table = f"{base}/{table}"
        self.staging_root = f"{base}/_staging"
        self.name = table
        self.local = is_local(self.fs)

    def exists(self, path: str) -> bool:
        return bool(self.fs.get_file_info(path).type != pafs.FileType.NotFound)

    def data_files(self) -> list[str]:
        return sorted(i.path for i in list_files(self.fs, self.table) if i.base_name.endswith(".parquet"))

    def recorded(self) -> dict[str, str] | None:
        """What the last run recorded in the state file, or None before the first run."""
        path = f"{self.table}/{STATE_FILE}"
        if not self.exists(path):
            return None
        with self.fs.open_input_stream(path) as stream:
            props: dict[str, str] = json.loads(stream.read().decode())
        return props


def write_parquet_stream(settings: LakehouseSettings, request: WriteRequest, batches: Iterable[pa.RecordBatch],
                         options: WriteOptions = DEFAULT_OPTIONS) -> WriteResult:
    """Write ``batches`` as Parquet files for ``request.identifier``: replace (full refresh) or add (append).

    ``partition`` None keeps the layout the table has; a different layout needs a full refresh.
    ``properties`` and the merge options are Iceberg's: Parquet files carry no table properties.
    """
    identifier, mode, run_id, chunk_bytes = request.identifier, request.mode, request.run_id, options.chunk_bytes
    if mode is SyncMode.INCREMENTAL:
        raise ConfigError(
            f"table {identifier}: the Parquet destination cannot merge on a key; "
            "use full_refresh or incremental_append, or the Iceberg destination"
        )
    target = writable_schema(request.schema)
    check_columns(target, identifier, request.primary_key, request.cursor_field)
    loc = ParquetLocation(settings, identifier)
    with _storage(identifier):
        existing = loc.data_files()
        recorded = loc.recorded()
        previous = pq.read_schema(existing[0], filesystem=loc.fs) if existing else None
    layout = _layout(request.partition, recorded, bool(existing), mode, identifier)
    items = parts(layout, assign_fresh_schema_ids(iceberg_schema(target, identifier)), identifier)
    if mode is SyncMode.INCREMENTAL_APPEND and previous is not None:
        check_compatible(iceberg_schema(previous, identifier), iceberg_schema(_stored(target, items), identifier),
                         identifier)
    staging = f"{loc.staging_root}/{loc.name}-{run_id or 'run'}"
    feed = Feed(batches, target, request.cursor_field, request.final_cursor)
    files: list[str] = []
    try:
        size, committing = _write_files(loc, staging, feed, chunk_bytes, run_id, items, files, identifier)
        # The files replace the whole table on a full refresh, so they are its rows too.
        rows_read = reconcile(identifier, request.rows_read, committing)
        state = json.dumps({**summary_properties(run_id, feed.cursor), PARTITION: json.dumps(described(items))})
        with _storage(identifier):
            if mode is SyncMode.FULL_REFRESH:
                _replace(loc, staging, files, existing, state, run_id)
            elif files:
                for name in files:
                    move_file(loc.fs, f"{staging}/{name}", f"{loc.table}/{name}")
                # Written last: a crash before it leaves the old cursor, so rows are read again, never skipped.
                _put_state(loc, staging, state)
    finally:
        _remove_dir(loc.fs, staging)
    log.info("parquet written", extra=fields(table=identifier, mode=mode.value, rows=feed.rows, files=len(files)))
    return WriteResult(rows_written=feed.rows, bytes_written=size, snapshot_id=None, cursor_value=feed.cursor.value,
                       rows_read=rows_read, rows_committed=committing,
                       table_rows=committing if mode is SyncMode.FULL_REFRESH else None)


def read_parquet_state(settings: LakehouseSettings, identifier: str) -> StreamState | None:
    props = ParquetLocation(settings, identifier).recorded()
    return state_from_properties(props) if props is not None else None


def _layout(requested: Sequence[PartitionField] | None, recorded: dict[str, str] | None, has_files: bool,
            mode: SyncMode, identifier: str) -> list[PartitionField]:
    """The partition layout this run writes: the requested one, else the one the files already have."""
    current = [PartitionField.model_validate(p) for p in json.loads((recorded or {}).get(PARTITION, "[]"))]
    if requested is None:
        return current
    wanted = list(requested)
    if mode is SyncMode.INCREMENTAL_APPEND and has_files and _keys(current) != _keys(wanted):
        raise ConfigError(
            f"table {identifier}: its Parquet files are partitioned by {_text(current)} but the stream asks for "
            f"{_text(wanted)}; run a full refresh to rewrite them in the new layout",
        )
    return wanted


def _keys(fields: Sequence[PartitionField]) -> list[tuple[str, str]]:
    return [(f.column, f.transform) for f in fields]


def _text(fields: Sequence[PartitionField]) -> str:
    return ", ".join(f"{f.column} {f.transform}" for f in fields) or "nothing (unpartitioned)"


def _stored(schema: pa.Schema, items: Sequence[Part]) -> pa.Schema:
    """The columns the files hold: identity partition columns live in directory names only."""
    dropped = {p.column for p in items if isinstance(p.transform, IdentityTransform)}
    return pa.schema([f for f in schema if f.name not in dropped])


@contextlib.contextmanager
def _storage(identifier: str) -> Iterator[None]:
    """Storage failures are transient; only storage calls go in here, so a source's own
    OSError (a dropped connection) keeps its type and message."""
    try:
        yield
    except OSError as exc:
        raise TransientError(f"cannot write Parquet files for {identifier}: {exc}") from exc


def _write_files(loc: ParquetLocation, staging: str, feed: Feed, chunk_bytes: int, run_id: str,
                 items: Sequence[Part], names: list[str], identifier: str) -> tuple[int, int]:
    """Write the feed under ``staging``, appending each file's path (relative to it) to ``names``;
    return the bytes and the rows written."""
    size = written = 0
    if loc.local:
        with _storage(identifier):
            loc.fs.create_dir(staging, recursive=True)
    for n, group in enumerate(chunks(feed, chunk_bytes)):
        data = pa.Table.from_batches(group, schema=feed.schema)
        for k, (directory, rows) in enumerate(split(data, items)):
            name = f"{directory}/part-{run_id or 'run'}-{n:05d}-{k:04d}.parquet" if directory else \
                f"part-{run_id or 'run'}-{n:05d}.parquet"
            path = f"{staging}/{name}"
            with _storage(identifier):
                if loc.local and directory:
                    loc.fs.create_dir(f"{staging}/{directory}", recursive=True)
                pq.write_table(rows, path, filesystem=loc.fs)
                size += loc.fs.get_file_info(path).size or 0
            written += rows.num_rows
            names.append(name)
    return size, written


def _replace(loc: ParquetLocation, staging: str, files: list[str], existing: list[str], state: str,
             run_id: str) -> None:
    if loc.local:
        _put_text(loc.fs, f"{staging}/{STATE_FILE}", state)
        _swap(loc, staging, run_id)
        return
    for name in files:
        move_file(loc.fs, f"{staging}/{name}", f"{loc.table}/{name}")
    _put_text(loc.fs, f"{loc.table}/{STATE_FILE}", state)
    _delete_old(loc, existing, files)


def _delete_old(loc: ParquetLocation, existing: list[str], new: list[str]) -> None:
    """Delete the previous run's files: whole directories where no new file landed (one listing and
    batch delete each), single files elsewhere."""
    kept = {"/".join(name.split("/")[:i]) for name in new for i in range(1, name.count("/") + 1)}
    directories: set[str] = set()
    files: list[str] = []
    for path in existing:
        relative = path.removeprefix(f"{loc.table}/")
        if relative in new:
            continue
        parents = relative.split("/")[:-1]
        drop = next(("/".join(parents[:i]) for i in range(1, len(parents) + 1)
                     if "/".join(parents[:i]) not in kept), None)
        if drop is None:
            files.append(path)
        else:
            directories.add(f"{loc.table}/{drop}")
    # Object store deletes are one round trip each, and pyarrow releases the GIL: overlap them.
    with ThreadPoolExecutor(max_workers=DELETE_THREADS, thread_name_prefix="parquet-delete") as pool:
        list(pool.map(loc.fs.delete_dir, sorted(directories)))
        list(pool.map(loc.fs.delete_file, files))


def _put_state(loc: ParquetLocation, staging: str, state: str) -> None:
    if loc.local:
        # A rename replaces the state file atomically; an object store's put already is atomic.
        _put_text(loc.fs, f"{staging}/{STATE_FILE}", state)
        loc.fs.move(f"{staging}/{STATE_FILE}", f"{loc.table}/{STATE_FILE}")
    else:
        _put_text(loc.fs, f"{loc.table}/{STATE_FILE}", state)


def _swap(loc: ParquetLocation, staging: str, run_id: str) -> None:
    parent = loc.table.rsplit("/", 1)[0]
    loc.fs.create_dir(parent, recursive=True)
    if not loc.exists(loc.table):
        loc.fs.move(staging, loc.table)
        return
    old = f"{loc.staging_root}/{loc.name}-{run_id or 'run'}.old"
    loc.fs.move(loc.table, old)
    try:
        loc.fs.move(staging, loc.table)
    except OSError:
        loc.fs.move(old, loc.table)
        raise
    _remove_dir(loc.fs, old)


def _put_text(fs: pafs.FileSystem, path: str, text: str) -> None:
    with fs.open_output_stream(path) as out:
        out.write(text.encode())


def _remove_dir(fs: pafs.FileSystem, path: str) -> None:
    try:
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            fs.delete_dir(path)
    except OSError:
        log.warning("could not remove a staging directory", extra=fields(path=path))
