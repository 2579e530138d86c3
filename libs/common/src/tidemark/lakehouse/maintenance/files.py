"""Which files the snapshots of a table reference: data and delete files, manifests, manifest lists."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pyiceberg.io import FileIO
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot


@dataclass
class Referenced:
    """Paths (as the manifests spell them) and, where the metadata knows it, their size in bytes."""

    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def paths(self) -> set[str]:
        return set(self.sizes)


def referenced(io: FileIO, snapshots: Iterable[Snapshot], manifests_seen: dict[str, list[tuple[str, int]]] | None = None
               ) -> Referenced:
    """Every file the ``snapshots`` hold live (a file a snapshot records as deleted is not its own)."""
    seen = manifests_seen if manifests_seen is not None else {}
    found = Referenced()
    for snapshot in snapshots:
        found.sizes.setdefault(snapshot.manifest_list, 0)
        for manifest in snapshot.manifests(io):
            found.sizes[manifest.manifest_path] = manifest.manifest_length
            entries = seen.get(manifest.manifest_path)
            if entries is None:
                entries = [(e.data_file.file_path, e.data_file.file_size_in_bytes)
                           for e in manifest.fetch_manifest_entry(io, discard_deleted=True)]
                seen[manifest.manifest_path] = entries
            found.sizes.update(entries)
    return found


def metadata_files(metadata: TableMetadata, metadata_location: str) -> set[str]:
    """The table's metadata JSON files still listed, and its statistics files."""
    files = {metadata_location, *(entry.metadata_file for entry in metadata.metadata_log)}
    files |= {s.statistics_path for s in metadata.statistics}
    files |= {s.statistics_path for s in metadata.partition_statistics}
    return files
