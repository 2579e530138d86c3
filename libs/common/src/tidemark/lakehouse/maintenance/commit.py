"""The compaction snapshot: remove the rewritten data files and the delete files folded into them, add the new files.

pyiceberg 0.12 has no rewrite action, and its overwrite producer only knows data files:
a delete manifest that holds a folded delete file would be rewritten as a data manifest.
:class:`CompactionOverwrite` keeps pyiceberg's overwrite for the data files and handles the
delete manifests itself: it drops exactly the folded delete files and keeps every other one, also
those a concurrent commit added.

Concurrency: pyiceberg's commit retries on a concurrent commit and re-runs the producer on the
fresh head. Compaction conflicts only when a rewritten file is gone or got a new delete file
since the plan (its rows changed); new data files of others do not conflict, so the serializable
"no added data files" check is not run for it. The snapshot is an ``overwrite``, not a
``replace``: a merge-on-read ingestion that planned against the old files then fails its own
validation (new data files under serializable isolation) instead of adding position deletes to
files that are gone, which would bring old rows back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile, ManifestContent, ManifestEntry, ManifestEntryStatus, ManifestFile
from pyiceberg.table import Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Operation, Summary
from pyiceberg.table.update.snapshot import _OverwriteFiles
from pyiceberg.table.update.validate import _validate_data_files_exist, _validate_no_new_deletes_for_data_files
from pyiceberg.typedef import EMPTY_DICT

from tidemark.lakehouse.deletes import _DeleteManifestWriter
from tidemark.lakehouse.state import RUN_ID

MAINTENANCE = "tidemark.maintenance"
STATE_PREFIX = "tidemark."


def carried_state(metadata: TableMetadata, snapshot_id: int | None) -> dict[str, str]:
    """The Tidemark state (run id, cursor) of the newest Tidemark snapshot at or below ``snapshot_id``."""
    while snapshot_id is not None:
        snapshot = metadata.snapshot_by_id(snapshot_id)
        if snapshot is None:
            return {}
        props = snapshot.summary.additional_properties if snapshot.summary else {}
        if RUN_ID in props:
            return {k: v for k, v in props.items() if k.startswith(STATE_PREFIX) and k != MAINTENANCE}
        snapshot_id = snapshot.parent_snapshot_id
    return {}


class CompactionOverwrite(_OverwriteFiles):
    def __init__(self, txn: Transaction, io: FileIO, folded: Iterable[str],
                 snapshot_properties: Mapping[str, str] = EMPTY_DICT) -> None:
        super().__init__(operation=Operation.OVERWRITE, transaction=txn, io=io,
                         snapshot_properties=dict(snapshot_properties))
        self._folded = set(folded)
        self._dropped: list[ManifestEntry] = []

    def _validate_concurrency(self) -> None:
        window = self._commit_window
        if window is None or window.is_empty() or window.head is None:
            return
        table = self._transaction._table
        _validate_data_files_exist(table, window.head, self._deleted_data_files, window.base)
        _validate_no_new_deletes_for_data_files(table, window.head, None, self._deleted_data_files, window.base)

    def _refresh_for_retry(self) -> None:
        super()._refresh_for_retry()
        self._dropped = []

    def _existing_manifests(self) -> list[ManifestFile]:
        kept: list[ManifestFile] = []
        for manifest in super()._existing_manifests():
            if manifest.content != ManifestContent.DELETES or not self._folded:
                kept.append(manifest)
                continue
            entries = manifest.fetch_manifest_entry(self._io, discard_deleted=True)
            gone = [e for e in entries if e.data_file.file_path in self._folded]
            if not gone:
                kept.append(manifest)
                continue
            self._dropped.extend(gone)
            rest = [e for e in entries if e.data_file.file_path not in self._folded]
            if rest:
                kept.append(self._write_kept_deletes(manifest.partition_spec_id, rest))
        return kept

    # The folded delete files are not written again as "deleted" entries (Java writes them): a scan reads
    # every entry of the current snapshot's manifests, and after folding thousands of delete files that
    # alone made a scan of the compacted table take twice as long as one of a freshly written table.
    # Expiry finds the files from the snapshots that still hold them (expire.py), not from these entries.

    def _write_kept_deletes(self, spec_id: int, entries: list[ManifestEntry]) -> ManifestFile:
        writer = _DeleteManifestWriter(self.spec(spec_id), self.schema(), self.new_manifest_output(),
                                       self._snapshot_id, self._compression)
        with writer:
            for entry in entries:
                writer.add_entry(ManifestEntry.from_args(
                    status=ManifestEntryStatus.EXISTING,
                    snapshot_id=entry.snapshot_id,
                    sequence_number=entry.sequence_number,
                    file_sequence_number=entry.file_sequence_number,
                    data_file=entry.data_file,
                ))
        return writer.to_manifest_file()

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        # The state is read from the parent this attempt commits on (it moves when pyiceberg retries), so the
        # compaction snapshot carries the newest cursor, never a stale one.
        props = {**carried_state(self._transaction.table_metadata, self._parent_snapshot_id), **snapshot_properties}
        added, removed = list(self._added_data_files), set(self._deleted_data_files)
        dropped: set[DataFile] = {e.data_file for e in self._dropped}
        self._deleted_data_files.update(dropped)
        try:
            return super()._summary(props)
        finally:
            self._added_data_files, self._deleted_data_files = added, removed
