"""The ledger of files read: what an incremental file stream commits with its data.

A file is identified by its path and a fingerprint of its content (SHA-256), not by its timestamp:
a new path or new content is read, anything else is not, whatever the timestamps say. So a file is
read exactly once when several share a modification time, when one is replaced with new content
(read again) and when one is uploaded again unchanged (not read again).

The writer commits the ledger in the Iceberg snapshot summary as the stream's cursor value, so data
and ledger cannot disagree after a crash. It is stored compressed: ``{"ledger": 1, "modified_at":
newest time, "files": base64(zlib(json {key: [modified, size, sha256]}))}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pyarrow import fs as pafs

from tidemark.connectors.files.listing import FileEntry
from tidemark.errors import FailureKind, SourceError

VERSION = 1
CHUNK = 8 << 20


def fingerprint(fs: pafs.FileSystem, entry: FileEntry) -> str:
    """SHA-256 of the file's stored bytes, read in bounded chunks."""
    digest = hashlib.sha256()
    with fs.open_input_stream(entry.path, compression=None) as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Ledger:
    """``files``: key → (modified ISO time, size, sha256) of every file read so far."""

    files: dict[str, tuple[str, int, str]] = field(default_factory=dict)

    @classmethod
    def decode(cls, value: Any, stream: str) -> Ledger:
        if value is None:
            return cls()
        if not (isinstance(value, dict) and value.get("ledger") == VERSION and isinstance(value.get("files"), str)):
            raise SourceError(
                f"stream {stream!r}: the saved state is not a file ledger (was the cursor another column?); "
                "resync the stream so no file is appended twice", FailureKind.CONFIG, stream=stream)
        raw = json.loads(zlib.decompress(base64.b64decode(value["files"])))
        return cls({k: (str(v[0]), int(v[1]), str(v[2])) for k, v in raw.items()})

    def encode(self) -> dict[str, Any]:
        packed = json.dumps(self.files, separators=(",", ":"), sort_keys=True).encode()
        newest = max((v[0] for v in self.files.values()), default=None)
        return {"ledger": VERSION, "modified_at": newest,
                "files": base64.b64encode(zlib.compress(packed, 9)).decode("ascii")}

    def unchanged(self, entry: FileEntry) -> bool:
        """Read before with the same time and size: no need to look at its content."""
        seen = self.files.get(entry.key)
        return seen is not None and seen[0] == _iso(entry.modified) and seen[1] == entry.size

    def same_content(self, entry: FileEntry, sha: str) -> bool:
        seen = self.files.get(entry.key)
        return seen is not None and seen[1] == entry.size and seen[2] == sha

    def record(self, entry: FileEntry, sha: str) -> None:
        self.files[entry.key] = (_iso(entry.modified), entry.size, sha)


def _iso(value: datetime) -> str:
    return value.isoformat()
