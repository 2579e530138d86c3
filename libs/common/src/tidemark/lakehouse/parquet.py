"""Plain Parquet output, through the same chunking, schema and state rules as Iceberg.

Layout under the warehouse::

    parquet/<namespace>/<table>/part-<run>-<n>.parquet     the data readers see
    parquet/<namespace>/<table>/_tidemark_state.json       run id and cursor (hidden from readers)
    parquet/<namespace>/_staging/<table>-<run>/            files being written

A run writes into its staging directory first. Full refresh then swaps the
staging directory in for the table directory (two renames; on a local disk
readers never see a mix of old and new files); append moves the new files in and
replaces the state file last. A failure before that leaves the table untouched.
Object stores have no atomic rename: there the swap is a copy, not atomic.

Blocking: call it off the event loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs
from pyiceberg.io.pyarrow import PyArrowFileIO

from tidemark.connectors.base import StreamState
from tidemark.errors import ConfigError, TransientError
from tidemark.events import SyncMode
from tidemark.lakehouse.batches import DEFAULT_CHUNK_BYTES, Feed, check_columns, chunks, writable_schema
from tidemark.lakehouse.schema import check_compatible, iceberg_schema
from tidemark.lakehouse.settings import LakehouseSettings
from tidemark.lakehouse.state import WriteResult, state_from_properties, summary_properties
from tidemark.logs import fields

log = logging.getLogger(__name__)

STATE_FILE = "_tidemark_state.json"


class ParquetLocation:
    def __init__(self, settings: LakehouseSettings, identifier: str) -> None:
        if not settings.warehouse:
            raise ConfigError("lakehouse: warehouse is empty; resolve the settings against a home")
        namespace, _, table = identifier.rpartition(".")
        parts = [*namespace.split("."), table]
        if not namespace or any(p in {"", ".", ".."} or "/" in p or "\\" in p for p in parts):
            raise ConfigError(f"table identifier {identifier!r} is not a safe `namespace.table` path")
        scheme, netloc, root = PyArrowFileIO.parse_location(settings.warehouse)
        self.fs: pafs.FileSystem = PyArrowFileIO(settings.properties).fs_by_scheme(scheme, netloc)
        base = f"{root.rstrip('/')}/parquet/{'/'.join(parts[:-1])}"
        self.table = f"{base}/{table}"
        self.staging_root = f"{base}/_staging"
        self.name = table

    def exists(self, path: str) -> bool:
        return bool(self.fs.get_file_info(path).type != pafs.FileType.NotFound)

    def data_files(self) -> list[str]:
        if not self.exists(self.table):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.table))
        return sorted(i.path for i in infos if i.is_file and i.base_name.endswith(".parquet"))


def write_parquet_stream(
    settings: LakehouseSettings,
    identifier: str,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    mode: SyncMode,
    primary_key: Sequence[str] = (),
    run_id: str = "",
    cursor_field: str | None = None,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> WriteResult:
    """Write ``batches`` as Parquet files for ``identifier``: replace (full refresh) or add (append)."""
    if mode is SyncMode.INCREMENTAL:
        raise ConfigError(
            f"table {identifier}: the Parquet destination cannot merge on a key; "
            "use full_refresh or incremental_append, or the Iceberg destination"
        )
    target = writable_schema(schema)
    check_columns(target, identifier, primary_key, cursor_field)
    loc = ParquetLocation(settings, identifier)
    existing = loc.data_files()
    if mode is SyncMode.INCREMENTAL_APPEND and existing:
        previous = pq.read_schema(existing[0], filesystem=loc.fs)
        check_compatible(iceberg_schema(previous, identifier), iceberg_schema(target, identifier), identifier)
    staging = f"{loc.staging_root}/{loc.name}-{run_id or 'run'}"
    feed = Feed(batches, target, cursor_field)
    try:
        loc.fs.create_dir(staging, recursive=True)
        files, size = _write_files(loc, staging, feed, chunk_bytes, run_id)
        state = json.dumps(summary_properties(run_id, feed.cursor))
        if mode is SyncMode.FULL_REFRESH:
            _put_text(loc.fs, f"{staging}/{STATE_FILE}", state)
            _swap(loc, staging, run_id)
        elif files:
            loc.fs.create_dir(loc.table, recursive=True)
            for name in files:
                loc.fs.move(f"{staging}/{name}", f"{loc.table}/{name}")
            # Written last: a crash before it leaves the old cursor, so rows are read again, never skipped.
            _put_text(loc.fs, f"{staging}/{STATE_FILE}", state)
            loc.fs.move(f"{staging}/{STATE_FILE}", f"{loc.table}/{STATE_FILE}")
    except OSError as exc:
        raise TransientError(f"cannot write Parquet files for {identifier}: {exc}") from exc
    finally:
        _remove_dir(loc.fs, staging)
    log.info("parquet written", extra=fields(table=identifier, mode=mode.value, rows=feed.rows, files=len(files)))
    return WriteResult(rows_written=feed.rows, bytes_written=size, snapshot_id=None, cursor_value=feed.cursor.value)


def read_parquet_state(settings: LakehouseSettings, identifier: str) -> StreamState | None:
    loc = ParquetLocation(settings, identifier)
    path = f"{loc.table}/{STATE_FILE}"
    if not loc.exists(path):
        return None
    with loc.fs.open_input_stream(path) as stream:
        props = json.loads(stream.read().decode())
    return state_from_properties(props)


def _write_files(loc: ParquetLocation, staging: str, feed: Feed, chunk_bytes: int,
                 run_id: str) -> tuple[list[str], int]:
    names: list[str] = []
    size = 0
    for n, group in enumerate(chunks(feed, chunk_bytes)):
        name = f"part-{run_id or 'run'}-{n:05d}.parquet"
        path = f"{staging}/{name}"
        pq.write_table(pa.Table.from_batches(group, schema=feed.schema), path, filesystem=loc.fs)
        size += loc.fs.get_file_info(path).size or 0
        names.append(name)
    return names, size


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
