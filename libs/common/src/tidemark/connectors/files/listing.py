"""Which files a stream reads: the listing below the prefix, matched against the stream's glob."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pyarrow import fs as pafs


@dataclass(frozen=True)
class FileEntry:
    """One object: ``key`` its path inside the bucket or container (what users see), ``path`` the
    filesystem path (bucket or container first), ``modified`` its last-modified time in UTC."""

    key: str
    path: str
    size: int
    modified: datetime

    @property
    def order(self) -> tuple[datetime, str]:
        return self.modified, self.key


@functools.cache
def glob_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` as a regex over paths: ``*`` and ``?`` within one folder, ``**/`` any folders
    (none included), ``**`` at the end anything, ``[...]`` a character class."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := pattern.find("]", i + 2)) > 0:
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def matches(pattern: str, relative: str) -> bool:
    return glob_regex(pattern.lstrip("/")).match(relative) is not None


def list_entries(fs: pafs.FileSystem, base: str, prefix: str) -> list[FileEntry]:
    """Every file below ``base/prefix`` (``base`` is the bucket or container), oldest first.

    Keys are relative to ``base``; raises the filesystem's OSError when the listing is refused."""
    root = f"{base}/{prefix}".rstrip("/")
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    entries = []
    for info in infos:
        if not info.is_file:
            continue
        modified = info.mtime if info.mtime is not None else datetime.fromtimestamp(0, UTC)
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=UTC)
        entries.append(FileEntry(key=info.path[len(base) + 1:], path=info.path, size=info.size or 0,
                                 modified=modified.astimezone(UTC)))
    return sorted(entries, key=lambda e: e.order)


def stream_files(entries: list[FileEntry], prefix: str, glob: str) -> list[FileEntry]:
    """The entries whose path below ``prefix`` matches ``glob``."""
    strip = f"{prefix}/" if prefix else ""
    return [e for e in entries if e.key.startswith(strip) and matches(glob, e.key[len(strip):])]
