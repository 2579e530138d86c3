"""Iceberg v2 position-delete files, and the overwrite snapshot that commits them.

pyiceberg 0.12 reads position deletes but never writes them: its snapshot producers
put every added file into a data manifest. A merge-on-read merge needs one snapshot
that adds data files (the new versions of rows), adds position-delete files (the old
versions' positions) in a delete manifest, and keeps every existing manifest;
:class:`DeletesOverwrite` is pyiceberg's overwrite producer with that second manifest.
A full refresh uses it to drop every delete file along with the data files.
"""

from __future__ import annotations

import uuid
from typing import IO, Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.conversions import to_bytes
from pyiceberg.io import FileIO
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestWriterV2,
)
from pyiceberg.table import Transaction
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Operation, Summary
from pyiceberg.table.update.snapshot import _OverwriteFiles
from pyiceberg.typedef import EMPTY_DICT, Record
from pyiceberg.types import LongType, StringType

PATH_FIELD_ID = 2147483546
POS_FIELD_ID = 2147483545

DELETE_SCHEMA = pa.schema([
    pa.field("file_path", pa.string(), nullable=False, metadata={b"PARQUET:field_id": str(PATH_FIELD_ID).encode()}),
    pa.field("pos", pa.int64(), nullable=False, metadata={b"PARQUET:field_id": str(POS_FIELD_ID).encode()}),
])


def write_position_deletes(metadata: TableMetadata, io: FileIO, data_path: str, positions: pa.Array) -> DataFile:
    """One position-delete file for the rows at ``positions`` (sorted, distinct) of ``data_path``."""
    locations = load_location_provider(table_location=metadata.location, table_properties=metadata.properties)
    path = locations.new_data_location(data_file_name=f"{uuid.uuid4()}-deletes.parquet")
    rows = pa.table([pa.array([data_path] * len(positions), pa.string()), positions.cast(pa.int64())],
                    schema=DELETE_SCHEMA)
    with io.new_output(path).create(overwrite=True) as stream:
        pq.write_table(rows, cast(IO[Any], stream), compression="zstd")
    data_file = DataFile.from_args(
        content=DataFileContent.POSITION_DELETES,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=Record(),
        record_count=len(positions),
        file_size_in_bytes=len(io.new_input(path)),
        column_sizes=None,
        value_counts={PATH_FIELD_ID: len(positions), POS_FIELD_ID: len(positions)},
        null_value_counts={PATH_FIELD_ID: 0, POS_FIELD_ID: 0},
        nan_value_counts=None,
        # Equal path bounds make readers index the file under its data file alone.
        lower_bounds={PATH_FIELD_ID: to_bytes(StringType(), data_path),
                      POS_FIELD_ID: to_bytes(LongType(), positions[0].as_py())},
        upper_bounds={PATH_FIELD_ID: to_bytes(StringType(), data_path),
                      POS_FIELD_ID: to_bytes(LongType(), positions[-1].as_py())},
        split_offsets=None,
        sort_order_id=None,
        spec_id=metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
    )
    data_file.spec_id = metadata.default_spec_id
    return data_file


class _DeleteManifestWriter(ManifestWriterV2):
    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


class DeletesOverwrite(_OverwriteFiles):
    """An overwrite snapshot that also adds ``delete_files`` and, with ``drop_deletes``, removes every current one."""

    def __init__(self, txn: Transaction, io: FileIO, delete_files: list[DataFile], drop_deletes: bool = False,
                 snapshot_properties: dict[str, str] = EMPTY_DICT) -> None:
        operation = Operation.OVERWRITE if txn.table_metadata.current_snapshot() is not None else Operation.APPEND
        super().__init__(operation=operation, transaction=txn, io=io, snapshot_properties=snapshot_properties)
        self._delete_files = list(delete_files)
        self._drop_deletes = drop_deletes
        self._dropped: list[ManifestEntry] = []

    def _existing_manifests(self) -> list[ManifestFile]:
        if not self._deleted_data_files and not self._drop_deletes:
            # A merge-on-read removes no data file, so every manifest stays as it is: pyiceberg would read
            # every entry of every manifest to find none to drop, a cost that grows with each merge.
            snapshot = self._transaction.table_metadata.snapshot_by_name(name=self._target_branch)
            return list(snapshot.manifests(io=self._io)) if snapshot is not None else []
        manifests = super()._existing_manifests()
        if not self._drop_deletes:
            return manifests
        kept = []
        for manifest in manifests:
            if manifest.content == ManifestContent.DELETES:
                self._dropped.extend(manifest.fetch_manifest_entry(self._io, discard_deleted=True))
            else:
                kept.append(manifest)
        return kept

    def _deleted_entries(self) -> list[ManifestEntry]:
        # Likewise: with no data file removed, no entry is deleted, and no manifest needs reading.
        return super()._deleted_entries() if self._deleted_data_files else []

    def _manifests(self) -> list[ManifestFile]:
        manifests = super()._manifests()
        entries = [
            ManifestEntry.from_args(status=ManifestEntryStatus.ADDED, snapshot_id=self._snapshot_id,
                                    sequence_number=None, file_sequence_number=None, data_file=f)
            for f in self._delete_files
        ] + [
            # Recorded as deleted so snapshot expiry can find and remove the files later.
            ManifestEntry.from_args(status=ManifestEntryStatus.DELETED, snapshot_id=self._snapshot_id,
                                    sequence_number=e.sequence_number, file_sequence_number=e.file_sequence_number,
                                    data_file=e.data_file)
            for e in self._dropped
        ]
        if entries:
            writer = _DeleteManifestWriter(self._transaction.table_metadata.spec(), self.schema(),
                                           self.new_manifest_output(), self._snapshot_id, self._compression)
            with writer:
                for entry in entries:
                    writer.add_entry(entry)
            manifests.append(writer.to_manifest_file())
        return manifests

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        # The summary's counters cover the delete files too (added/removed delete files and positions).
        added, removed = list(self._added_data_files), set(self._deleted_data_files)
        self._added_data_files.extend(self._delete_files)
        self._deleted_data_files.update(e.data_file for e in self._dropped)
        try:
            return super()._summary(snapshot_properties)
        finally:
            self._added_data_files, self._deleted_data_files = added, removed
