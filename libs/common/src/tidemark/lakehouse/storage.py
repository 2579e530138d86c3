"""One filesystem layer for Iceberg and Parquet: the same pyarrow filesystem, built from the same settings.

Blocking: call it off the event loop.
"""

from __future__ import annotations

import logging
import threading

from pyarrow import fs as pafs
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.typedef import EMPTY_DICT, Properties

from tidemark.lakehouse.settings import AZURE_SCHEMES, LakehouseSettings
from tidemark.logs import fields

log = logging.getLogger(__name__)

_FsKey = tuple[tuple[tuple[str, str], ...], str, str | None]
_filesystems: dict[_FsKey, pafs.FileSystem] = {}
_filesystems_lock = threading.Lock()


class TidemarkFileIO(PyArrowFileIO):
    """pyiceberg's pyarrow FileIO, also for Azure's canonical ``abfs[s]://container@account.dfs.../path``.

    pyarrow's AzureFileSystem wants ``container/path``; pyiceberg 0.12 hands it
    ``container@account.dfs.core.windows.net/path``, which Azure rejects. Table
    locations from a REST catalog come in the canonical form, so we translate.
    """

    @staticmethod
    def parse_location(location: str, properties: Properties = EMPTY_DICT) -> tuple[str, str, str]:
        scheme, netloc, path = PyArrowFileIO.parse_location(location, properties)
        if scheme in AZURE_SCHEMES and "@" in netloc and path.startswith(netloc):
            path = netloc.split("@", 1)[0] + path[len(netloc):]
        return scheme, netloc, path

    def _initialize_fs(self, scheme: str, netloc: str | None = None) -> pafs.FileSystem:
        """One filesystem per process for each (properties, scheme, bucket), shared by every instance.

        pyiceberg builds a new FileIO for every table load, create and commit (six for one
        full-refresh stream), and each would build its own filesystem: for S3 and Azure a new
        client with its own connection pool, so new connections and TLS handshakes every time.
        pyarrow filesystems are thread-safe.
        """
        key: _FsKey = (tuple(sorted(self.properties.items())), scheme, netloc)
        with _filesystems_lock:
            filesystem = _filesystems.get(key)
            if filesystem is None:
                filesystem = super()._initialize_fs(scheme, netloc)
                _filesystems[key] = filesystem
                log.debug("warehouse filesystem opened", extra=fields(scheme=scheme, netloc=netloc or ""))
        return filesystem


def warehouse_filesystem(settings: LakehouseSettings, location: str | None = None) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem for ``location`` (default: the warehouse) and the path inside it."""
    io = TidemarkFileIO(settings.file_io_properties())
    scheme, netloc, path = io.parse_location(location or settings.warehouse)
    return io.fs_by_scheme(scheme, netloc), path.rstrip("/")


def is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def move_file(fs: pafs.FileSystem, source: str, target: str) -> None:
    """Rename on a local disk. Object stores have no rename (Azure without a hierarchical namespace
    refuses it, S3's is a copy): there this only copies, and the caller removes the whole source
    directory at the end, one listing and batch delete instead of a delete per file."""
    if is_local(fs):
        fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        fs.move(source, target)
        return
    fs.copy_file(source, target)


def list_files(fs: pafs.FileSystem, root: str) -> list[pafs.FileInfo]:
    """Every file below ``root`` (none when it does not exist)."""
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return [info for info in infos if info.is_file]
