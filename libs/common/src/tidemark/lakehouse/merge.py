"""Merge on the primary key by rewriting only the data files that hold a changed key.

pyiceberg's ``upsert`` scans the whole table for the incoming keys, then deletes
through a filter that rewrites every file it matches, so a small change to a large
table reads it twice. Here, per chunk of incoming rows:

1. the files whose key bounds (column statistics) cannot hold an incoming key are skipped;
2. of the others, only the key columns are read, to find the files that really do;
3. each of those is rewritten without the changed rows, into a file of its own (so
   files keep narrow key ranges and the next merge can skip them again);
4. the incoming rows are added as new files; one overwrite snapshot swaps them in.

Copy-on-write costs about the size of the files a merge touches, so changes clustered
by key (recent rows) are cheap and changes spread evenly over the whole table cost a
rewrite of most of it. Merge-on-read (``merge_on_read=True``, format v2 tables) replaces
step 3: each touched file keeps its rows and gets a position-delete file for the changed
ones (see deletes.py), so a merge costs the key columns it reads plus the rows it adds;
the delete files pile up until a full refresh replaces the table.
Unpartitioned tables only; the writer falls back to pyiceberg's upsert for the others.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.conversions import from_bytes
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, _read_all_delete_files, schema_to_pyarrow
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table, Transaction
from pyiceberg.types import PrimitiveType

from tidemark.lakehouse.batches import chunks
from tidemark.lakehouse.datafiles import DataFileWriter, dictionary_columns
from tidemark.lakehouse.deletes import DeletesOverwrite, write_position_deletes

ROW_INDEX = "__tidemark_row"
REWRITE_THREADS = 2


class Merger:
    """Merges chunks of rows into the table staged in ``txn``, one overwrite snapshot per chunk."""

    def __init__(self, txn: Transaction, table: Table, keys: Sequence[str], schema: pa.Schema,
                 chunk_bytes: int, merge_on_read: bool = False) -> None:
        self.txn = txn
        self.io = table.io
        self.keys = list(keys)
        self.schema = schema
        self.chunk_bytes = chunk_bytes
        self.merge_on_read = merge_on_read
        # The live files, kept up to date chunk by chunk (the staged snapshots are not scanned again).
        self.live: list[FileScanTask] = list(table.scan().plan_files()) if table.current_snapshot() else []
        self.metadata = txn.table_metadata
        # Judged once, from the first rows rewritten: every rewritten file holds the same kind of data.
        self.dictionary: list[str] | None = None

    def merge(self, data: pa.Table, properties: dict[str, str]) -> None:
        """Replace the rows of ``data``'s keys (``data`` holds each key once) and add the new ones."""
        # Staged in the transaction until this merge commits: each read of txn.table_metadata copies it.
        self.metadata = self.txn.table_metadata
        incoming = data.select(self.keys)
        candidates = [task for task in self.live if self._may_hold(task.file, incoming)]
        if self.merge_on_read:
            self._merge_on_read(data, incoming, candidates, properties)
            return
        added: list[DataFile] = []  # appended to by the workers; list.append is atomic
        try:
            # Files are independent and their decoding and encoding release the GIL: two at a time.
            with ThreadPoolExecutor(max_workers=REWRITE_THREADS, thread_name_prefix="tidemark-merge") as pool:
                touched = list(pool.map(lambda task: self._rewrite(task, incoming, added), candidates))
            writer = DataFileWriter(self.metadata, self.io, self.schema, added)
            for group in chunks(data.to_batches(), self.chunk_bytes):
                writer.write(group)
            writer.close()
        except BaseException:
            # Best effort, while the original error propagates: these files are in no snapshot.
            for data_file in added:
                with contextlib.suppress(OSError):
                    self.io.delete(data_file.file_path)
            raise
        removed = [task for task, hit in zip(candidates, touched, strict=True) if hit]
        with self.txn.update_snapshot(snapshot_properties=properties).overwrite() as overwrite:
            for task in removed:
                overwrite.delete_data_file(task.file)
            for data_file in added:
                overwrite.append_data_file(data_file)
        gone = {id(task) for task in removed}
        self.live = [task for task in self.live if id(task) not in gone] + [FileScanTask(f) for f in added]

    def _merge_on_read(self, data: pa.Table, incoming: pa.Table, candidates: list[FileScanTask],
                       properties: dict[str, str]) -> None:
        added: list[DataFile] = []
        deletes: list[DataFile] = []  # appended to by the workers
        try:
            with ThreadPoolExecutor(max_workers=REWRITE_THREADS, thread_name_prefix="tidemark-merge") as pool:
                found = list(pool.map(lambda task: self._delete_rows(task, incoming, deletes), candidates))
            writer = DataFileWriter(self.metadata, self.io, self.schema, added)
            for group in chunks(data.to_batches(), self.chunk_bytes):
                writer.write(group)
            writer.close()
            with DeletesOverwrite(self.txn, self.io, deletes, snapshot_properties=properties) as overwrite:
                for data_file in added:
                    overwrite.append_data_file(data_file)
        except BaseException:
            # Best effort, while the original error propagates: these files are in no snapshot.
            for written in added + deletes:
                with contextlib.suppress(OSError):
                    self.io.delete(written.file_path)
            raise
        touched = {id(task): delete for task, delete in zip(candidates, found, strict=True) if delete is not None}
        self.live = [
            FileScanTask(task.file, delete_files=task.delete_files | {touched[id(task)]}) if id(task) in touched
            else task
            for task in self.live
        ] + [FileScanTask(f) for f in added]

    def _delete_rows(self, task: FileScanTask, incoming: pa.Table, deletes: list[DataFile]) -> DataFile | None:
        """Write a position-delete file for ``task``'s live rows with an incoming key; None when it has none."""
        # Only the keys within this file's bounds can match: a much smaller set to look each row up in.
        inside = self._inside(task.file, incoming)
        if inside is not None:
            incoming = incoming.filter(inside)
        found = []
        offset = 0
        for batch in self._file_keys(task):
            hits = pc.indices_nonzero(self._matches(batch, incoming)).cast(pa.int64())
            if len(hits):
                found.append(pc.add(hits, offset))
            offset += batch.num_rows
        if not found:
            return None
        positions = pa.concat_arrays(found)
        gone = _read_all_delete_files(self.io, [task]).get(task.file.file_path, [])
        if gone:
            old = pa.chunked_array([c for deleted in gone for c in deleted.chunks], pa.int64())
            positions = positions.filter(pc.invert(pc.is_in(positions, value_set=old.combine_chunks())))
            if not len(positions):
                return None
        delete = write_position_deletes(self.metadata, self.io, task.file.file_path, positions)
        deletes.append(delete)
        return delete

    def _file_keys(self, task: FileScanTask) -> Iterator[pa.RecordBatch]:
        """The key columns of every row of ``task``'s file, deleted or not (positions count them all), in order."""
        schema = self.metadata.schema()
        wanted = {schema.find_field(key).field_id: key for key in self.keys}
        # Straight from Parquet by field id: pyiceberg's scan costs twice the read for one small column.
        with self.io.new_input(task.file.file_path).open() as stream:
            parquet = pq.ParquetFile(stream)
            names = {}
            for field in parquet.schema_arrow:
                field_id = (field.metadata or {}).get(b"PARQUET:field_id")
                if field_id is not None and int(field_id) in wanted:
                    names[wanted[int(field_id)]] = field.name
            if len(names) == len(wanted):
                target = schema_to_pyarrow(schema.select(*self.keys), include_field_ids=False)
                for batch in parquet.iter_batches(columns=[names[key] for key in self.keys]):
                    # Files older than a type promotion (int -> long) hold the narrower type.
                    yield pa.RecordBatch.from_arrays(batch.columns, names=self.keys).cast(target)
                return
        # A file without field ids (added by another tool) goes through pyiceberg's name mapping.
        yield from self._scan(task, self.keys, with_deletes=False)

    def _rewrite(self, task: FileScanTask, incoming: pa.Table, added: list[DataFile]) -> bool:
        """Rewrite ``task``'s file without the incoming keys; False (and nothing written) when it holds none."""
        if not self._holds_any(task, incoming):
            return False
        # The rest of a file goes to a file of its own, keeping its narrow key range.
        rest: DataFileWriter | None = None
        try:
            for group in chunks(self._rows_without(task, incoming), self.chunk_bytes):
                if self.dictionary is None:
                    self.dictionary = dictionary_columns(group[0])
                rest = rest or DataFileWriter(self.metadata, self.io, group[0].schema, added,
                                              dictionary=self.dictionary)
                rest.write(group)
            if rest is not None:
                rest.close()
        except BaseException:
            if rest is not None:
                rest.abort()
            raise
        return True

    def _scan(self, task: FileScanTask, names: Sequence[str] | None = None,
              with_deletes: bool = True) -> Iterator[pa.RecordBatch]:
        schema = self.metadata.schema()
        projected = schema.select(*names) if names is not None else schema
        scan = ArrowScan(self.metadata, self.io, projected, AlwaysTrue())
        # Batch by batch: ``to_record_batches`` would first decode the whole file, in each thread.
        deletes = _read_all_delete_files(self.io, [task]) if with_deletes else {}
        yield from scan._record_batches_from_scan_tasks_and_deletes([task], deletes)

    def _may_hold(self, data_file: DataFile, incoming: pa.Table) -> bool:
        """False only when the file's bounds on the first key column exclude every incoming key."""
        inside = self._inside(data_file, incoming)
        return inside is None or bool(pc.any(inside).as_py())

    def _inside(self, data_file: DataFile, incoming: pa.Table) -> pa.ChunkedArray | None:
        """Which incoming keys lie within the file's bounds on the first key column; None when unknown."""
        schema = self.metadata.schema()
        field = schema.find_field(self.keys[0])
        lower = (data_file.lower_bounds or {}).get(field.field_id)
        upper = (data_file.upper_bounds or {}).get(field.field_id)
        if lower is None or upper is None or not isinstance(field.field_type, PrimitiveType):
            return None
        try:
            column = _comparable(incoming.column(self.keys[0]))
            low = _scalar(from_bytes(field.field_type, lower), column.type)
            high = _scalar(from_bytes(field.field_type, upper), column.type)
            return pc.fill_null(pc.and_(pc.greater_equal(column, low), pc.less_equal(column, high)), True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError, ValueError):
            return None

    def _holds_any(self, task: FileScanTask, incoming: pa.Table) -> bool:
        return any(pc.any(self._matches(batch, incoming)).as_py() for batch in self._scan(task, self.keys))

    def _rows_without(self, task: FileScanTask, incoming: pa.Table) -> Iterator[pa.RecordBatch]:
        for batch in self._scan(task):
            kept = batch.filter(pc.invert(self._matches(batch, incoming)))
            if kept.num_rows:
                yield kept

    def _matches(self, batch: pa.RecordBatch, incoming: pa.Table) -> pa.Array:
        """Whether each row of ``batch`` has a key that ``incoming`` holds."""
        if len(self.keys) == 1:
            column = batch.column(self.keys[0])
            values = incoming.column(0)
            if values.type != column.type:
                values = values.cast(column.type)
            return pc.fill_null(pc.is_in(column, value_set=values), False)
        keys = pa.Table.from_batches([batch.select(self.keys)]).cast(incoming.schema)
        numbered = keys.append_column(ROW_INDEX, pa.array(range(batch.num_rows), pa.int64()))
        found = numbered.join(incoming, self.keys, join_type="left semi")[ROW_INDEX]
        return pc.is_in(numbered[ROW_INDEX], value_set=found.combine_chunks())


def _comparable(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Temporal keys as the integers Iceberg's bounds hold (microseconds, days)."""
    if pa.types.is_timestamp(column.type) or pa.types.is_time64(column.type):
        return column.cast(pa.int64())
    if pa.types.is_date32(column.type):
        return column.cast(pa.int32())
    return column


def _scalar(value: Any, typ: pa.DataType) -> pa.Scalar:
    return pa.scalar(value, type=typ)
