"""Data files of an unpartitioned Iceberg table, written as a stream of row groups.

pyiceberg's own writer takes a whole table (or buffers a file's worth of batches)
and then encodes it; here each bounded group of batches becomes one row group of
the open file as soon as it arrives, and a file is closed when it reaches the
table's target size. Memory holds one group, however big the stream.

Dictionary encoding is chosen per column from a sample of the first group written:
a column whose values barely repeat (keys, timestamps, free text, JSON) is written
plain, because trying a dictionary on it costs about a third of the encoding time
and saves nothing; a column that repeats keeps its dictionary.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable
from typing import IO, Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.io import FileIO, OutputStream
from pyiceberg.io.fileformat import FileFormatFactory
from pyiceberg.io.pyarrow import (
    _get_parquet_writer_kwargs,
    _to_requested_schema,
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
    pyarrow_to_schema,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.schema import Schema, sanitize_column_names
from pyiceberg.table import TableProperties
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.typedef import Record
from pyiceberg.utils.properties import property_as_int

from tidemark.logs import fields

log = logging.getLogger(__name__)

DICTIONARY_SAMPLE_ROWS = 10_000
# A column keeps its dictionary when its sample has at most this share of distinct values.
DICTIONARY_MAX_DISTINCT = 0.5


def dictionary_columns(batch: pa.RecordBatch) -> list[str]:
    """The columns of ``batch`` worth dictionary-encoding, judged from its first rows."""
    sample = batch.slice(0, DICTIONARY_SAMPLE_ROWS)
    chosen = []
    for name, column in zip(sample.schema.names, sample.columns, strict=True):
        present = len(column) - column.null_count
        if present == 0:
            chosen.append(name)
            continue
        try:
            distinct = pc.count_distinct(column).as_py()
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            chosen.append(name)  # nested types: leave it to the encoder
            continue
        if distinct <= present * DICTIONARY_MAX_DISTINCT:
            chosen.append(name)
    return chosen


class _OpenFile:
    def __init__(self, path: str, stream: OutputStream, writer: pq.ParquetWriter) -> None:
        self.path = path
        self.stream = stream
        self.writer = writer
        self.arrow_bytes = 0


class DataFileWriter:
    """Writes groups of batches (all of ``arrow_schema``) as Parquet data files for ``metadata``'s table.

    Closed files are appended to ``written`` as they close, so a caller that fails midway
    knows which files to remove; :meth:`abort` removes the file still open.
    """

    def __init__(self, metadata: TableMetadata, io: FileIO, arrow_schema: pa.Schema, written: list[DataFile],
                 target_bytes: int | None = None, dictionary: list[str] | None = None,
                 dictionary_ids: set[int] | None = None) -> None:
        self.metadata = metadata
        self.io = io
        self.written = written
        table_schema = metadata.schema()
        sanitized = sanitize_column_names(table_schema)
        self.file_schema: Schema = sanitized if sanitized != table_schema else table_schema
        self.task_schema = pyarrow_to_schema(arrow_schema, name_mapping=table_schema.name_mapping,
                                             format_version=metadata.format_version)
        props = metadata.properties
        self.kwargs: dict[str, Any] = _get_parquet_writer_kwargs(props)
        self.row_group_rows = property_as_int(props, TableProperties.PARQUET_ROW_GROUP_LIMIT,
                                              TableProperties.PARQUET_ROW_GROUP_LIMIT_DEFAULT) or 1_048_576
        # In Arrow bytes, as pyiceberg measures it; the table's own target unless the caller sets one.
        self.target_bytes = target_bytes or property_as_int(
            props, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
        ) or 512 * 1024 * 1024
        self.locations = load_location_provider(table_location=metadata.location, table_properties=props)
        self.format_model = FileFormatFactory.get(FileFormat.PARQUET)
        self.write_uuid = uuid.uuid4()
        self.count = 0
        self.current: _OpenFile | None = None
        # The columns to dictionary-encode (by name, or by field id); None: judged from the first group written.
        self.dictionary = dictionary
        if dictionary is None and dictionary_ids is not None:
            self.dictionary = [f.name for f in self.file_schema.fields if f.field_id in dictionary_ids]

    def write(self, group: Iterable[pa.RecordBatch]) -> None:
        batches = [_to_requested_schema(self.file_schema, self.task_schema, b, include_field_ids=True,
                                        format_model=self.format_model) for b in group]
        if not batches:
            return
        data = pa.Table.from_batches(batches)
        if self.current is None:
            self.current = self._open(batches[0])
        self.current.writer.write_table(data, row_group_size=self.row_group_rows)
        self.current.arrow_bytes += data.nbytes
        if self.current.arrow_bytes >= self.target_bytes:
            self._close()

    def close(self) -> None:
        if self.current is not None:
            self._close()

    def abort(self) -> None:
        """Close and delete the file being written (it is in no snapshot)."""
        current, self.current = self.current, None
        if current is None:
            return
        # Best effort: this runs while another error propagates, which must not be masked.
        with contextlib.suppress(Exception):
            current.writer.close()
            current.stream.close()
        try:
            self.io.delete(current.path)
        except OSError:
            log.warning("could not remove an uncommitted data file", extra=fields(path=current.path))

    def _open(self, first: pa.RecordBatch) -> _OpenFile:
        name = f"00000-{self.count}-{self.write_uuid}.parquet"
        self.count += 1
        path = self.locations.new_data_location(data_file_name=name)
        stream = self.io.new_output(path).create(overwrite=True)
        if self.dictionary is None:
            # Judged once per writer (one stream's files hold the same kind of data): counting the distinct
            # values of a sample again for every file cost about a tenth of a text-heavy table's write.
            self.dictionary = dictionary_columns(first)
        try:
            writer = pq.ParquetWriter(cast(IO[Any], stream), schema=first.schema, store_decimal_as_integer=True,
                                      use_dictionary=self.dictionary, **self.kwargs)
        except BaseException:
            stream.close()
            raise
        return _OpenFile(path, stream, writer)

    def _close(self) -> None:
        current, self.current = self.current, None
        assert current is not None
        with current.stream:
            current.writer.close()
        statistics = data_file_statistics_from_parquet_metadata(
            parquet_metadata=current.writer.writer.metadata,
            stats_columns=compute_statistics_plan(self.file_schema, self.metadata.properties),
            parquet_column_mapping=parquet_path_to_id_mapping(self.file_schema),
        )
        data_file = DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=current.path,
            file_format=FileFormat.PARQUET,
            partition=Record(),
            file_size_in_bytes=len(self.io.new_input(current.path)),
            sort_order_id=None,
            spec_id=self.metadata.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **statistics.to_serialized_dict(),
        )
        # Not a field of the file's record, so from_args leaves it unset; a scan of the file needs it.
        data_file.spec_id = self.metadata.default_spec_id
        self.written.append(data_file)
