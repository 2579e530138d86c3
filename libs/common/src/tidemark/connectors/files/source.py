"""The check/discover/read skeleton every file source shares.

A store module supplies the filesystem (a pyarrow filesystem built by the lakehouse's storage layer),
the bucket or container it lists, and the rules that turn the store's errors into messages. Which
files a mode reads, how they are parsed and how their schemas merge lives here, once.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator, Sequence
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import fs as pafs

from tidemark.connectors.base import Catalog, ColumnInfo, ConnectorConfig, Source, StreamInfo, StreamState
from tidemark.connectors.egress import check_endpoints
from tidemark.connectors.files.config import FilesConfig, FileStream
from tidemark.connectors.files.formats import BadFile, batches, file_schema
from tidemark.connectors.files.ledger import Ledger, fingerprint
from tidemark.connectors.files.listing import FileEntry, list_entries, stream_files
from tidemark.connectors.files.schema import conform, merge
from tidemark.connectors.sql.cursor import cursor_bound
from tidemark.connectors.sql.errors import ErrorRule, classify
from tidemark.connectors.sql.tables import is_cursor_type
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode
from tidemark.logs import fields

log = logging.getLogger("tidemark.connectors")

FILE = "_file"
MODIFIED = "_file_modified_at"
FILE_FIELDS = (pa.field(FILE, pa.string()), pa.field(MODIFIED, pa.timestamp("us", tz="UTC")))

_OPS = {">": pc.greater, ">=": pc.greater_equal}


class FileSource(Source):
    """``check``, ``discover``, ``arrow_schema`` and ``read`` for any object store."""

    config: FilesConfig
    error_rules: ClassVar[Sequence[ErrorRule]] = ()

    def __init__(self, config: ConnectorConfig) -> None:
        if not isinstance(config, FilesConfig):
            raise TypeError(f"{type(self).__name__} needs a {self.config_model.__name__}")
        super().__init__(config)
        self._fs: pafs.FileSystem | None = None
        self._schemas: dict[str, pa.Schema] = {}
        self._ledgers: dict[str, Ledger] = {}

    # -- hooks -------------------------------------------------------------

    @abc.abstractmethod
    def open_filesystem(self) -> pafs.FileSystem:
        """The pyarrow filesystem of the store, with the connection's credentials."""

    @abc.abstractmethod
    def base(self) -> str:
        """The bucket or container: the first part of every filesystem path."""

    @abc.abstractmethod
    def location(self) -> str:
        """Where the files are, for messages (``s3://bucket/prefix``)."""

    # -- store access --------------------------------------------------------

    @property
    def fs(self) -> pafs.FileSystem:
        if self._fs is None:
            # The store's client resolves the endpoint itself: check it before the first request.
            check_endpoints(self.config.endpoints())
            self._fs = self.open_filesystem()
        return self._fs

    def translate(self, exc: Exception) -> SourceError:
        """A store error as a message that says what to do."""
        text = str(exc)
        found = classify(text, self.error_rules, {"location": self.location(), "detail": text})
        if found is not None:
            message, kind, field = found
            return SourceError(message, kind, **({"field": field} if field else {}))
        return SourceError(f"{self.location()}: {text}", FailureKind.TRANSIENT)

    def entries(self) -> list[FileEntry]:
        """Every file of the connection; an error when the bucket or container is not there (stores
        list a missing one as empty, which a run would take for "no files yet" and succeed with 0 rows)."""
        try:
            found = list_entries(self.fs, self.base(), self.config.root())
            if not found and self.fs.get_file_info(self.base()).type != pafs.FileType.Directory:
                raise SourceError(f"{self.location()}: the bucket or container does not exist", FailureKind.CONFIG)
        except OSError as exc:
            raise self.translate(exc) from exc
        return found

    def stream_config(self, name: str) -> FileStream:
        found = self.config.stream(name)
        if found is None:
            raise SourceError(f"stream {name!r} does not exist: the connection's streams are "
                              f"{', '.join(s.name for s in self.config.streams)}", FailureKind.CONFIG, stream=name)
        return found

    def files(self, stream: FileStream) -> list[FileEntry]:
        """The stream's files, oldest first (ties by path)."""
        return stream_files(self.entries(), self.config.root(), stream.glob)

    # -- protocol ----------------------------------------------------------

    def check(self) -> None:
        """The listing works and the bucket or container exists. A glob that matches nothing yet is fine."""
        self.entries()

    def discover(self) -> Catalog:
        entries = self.entries()
        streams = []
        for stream in self.config.streams:
            files = stream_files(entries, self.config.root(), stream.glob)
            schema = self._infer(stream, files)
            self._schemas[stream.name] = schema
            streams.append(StreamInfo(
                name=stream.name,
                columns=[ColumnInfo(name=f.name, type=str(f.type), nullable=True, source_type=self._source_type(
                    stream, f)) for f in schema],
                primary_key=list(stream.primary_key),
                cursor_candidates=[f.name for f in schema if is_cursor_type(f.type)],
            ))
        return Catalog(streams=streams)

    def stream_schema(self, name: str) -> pa.Schema:
        stream = self.stream_config(name)
        if name not in self._schemas:
            self._schemas[name] = self._infer(stream, self.files(stream))
        return self._schemas[name]

    def arrow_schema(self, stream: StreamSpec) -> pa.Schema:
        schema = self.stream_schema(stream.name)
        names = stream.columns or schema.names
        unknown = [n for n in names if schema.get_field_index(n) < 0]
        if unknown:
            raise SourceError(f"stream {stream.name!r}: unknown columns {unknown}", FailureKind.CONFIG,
                              stream=stream.name, columns=unknown)
        return pa.schema([schema.field(n) for n in names])

    def declared_key(self, stream: StreamSpec) -> list[str]:
        return list(self.stream_config(stream.name).primary_key)

    def final_state(self, stream: StreamSpec) -> StreamState | None:
        ledger = self._ledgers.get(stream.name)
        if ledger is None:
            return None
        return StreamState(cursor_field=MODIFIED, cursor_value=ledger.encode())

    def read(self, stream: StreamSpec, state: StreamState | None) -> Iterator[pa.RecordBatch]:
        config = self.stream_config(stream.name)
        out = self.arrow_schema(stream)
        schema = self.stream_schema(stream.name)
        listed = self.files(config)
        files: list[tuple[FileEntry, str | None]] = [(e, None) for e in listed]
        bound = None
        self._ledgers.pop(stream.name, None)
        if stream.cursor_field == MODIFIED and self.config.file_columns:
            files = self._unread(stream, state, listed)
        elif stream.sync_mode is not SyncMode.FULL_REFRESH:
            if not stream.cursor_field or schema.get_field_index(stream.cursor_field) < 0:
                raise SourceError(f"stream {stream.name!r}: unknown cursor column {stream.cursor_field!r}",
                                  FailureKind.CONFIG, stream=stream.name)
            bound = cursor_bound(stream, state, schema.field(stream.cursor_field).type)
        ledger = self._ledgers.get(stream.name)
        for entry, sha in files:
            for batch in self._file(stream.name, config, entry, schema, out.names):
                if bound is not None:
                    batch = batch.filter(_OPS[bound[0]](batch.column(stream.cursor_field), pa.scalar(
                        bound[1], schema.field(stream.cursor_field).type)))
                if batch.num_rows:
                    yield batch
            if ledger is not None and sha is not None:
                ledger.record(entry, sha)

    # -- internals -------------------------------------------------------------

    def _unread(self, spec: StreamSpec, state: StreamState | None,
                files: list[FileEntry]) -> list[tuple[FileEntry, str | None]]:
        """Ledger mode: the files not read before (new path, or new content), each with its fingerprint.

        The new ledger starts as the old one cut to the files that still exist; ``read`` adds each file
        once it has read it, and :meth:`final_state` hands it to the writer for its commit."""
        old = Ledger.decode(None if spec.sync_mode is SyncMode.FULL_REFRESH or state is None
                            else state.cursor_value, spec.name)
        new = Ledger({e.key: old.files[e.key] for e in files if e.key in old.files})
        self._ledgers[spec.name] = new
        todo: list[tuple[FileEntry, str | None]] = []
        for entry in files:
            if old.unchanged(entry):
                continue
            try:
                sha = fingerprint(self.fs, entry)
            except FileNotFoundError as exc:
                raise vanished(spec.name, entry) from exc
            except OSError as exc:
                raise self.translate(exc) from exc
            if old.same_content(entry, sha):
                new.record(entry, sha)  # uploaded again unchanged: its new time, so it is not hashed again
                continue
            todo.append((entry, sha))
        log.info("files to read", extra=fields(stream=spec.name, files=len(todo), known=len(old.files)))
        return todo

    def _file(self, stream: str, config: FileStream, entry: FileEntry, schema: pa.Schema,
              names: list[str]) -> Iterator[pa.RecordBatch]:
        """One file's rows as ``names`` of ``schema``; a bad file fails the stream or, with
        ``on_bad_file: skip``, is checked whole before any row leaves and reported if bad."""
        if self.config.on_bad_file == "skip":
            try:
                for _ in self._parsed(stream, config, entry, schema, names):
                    pass
            except BadFile as bad:
                log.warning("bad file skipped", extra=fields(stream=stream, file=entry.key, error=bad.message))
                self.warnings.add(stream, "file_skipped", None, f"skipped {bad.message}", subject=entry.key)
                return
        try:
            yield from self._parsed(stream, config, entry, schema, names)
        except BadFile as bad:
            raise SourceError(f"stream {stream!r}: {bad.message} (set on_bad_file: skip to skip such files)",
                              FailureKind.TERMINAL, stream=stream, file=bad.key) from bad
        except FileNotFoundError as exc:
            raise vanished(stream, entry) from exc
        except OSError as exc:
            raise self.translate(exc) from exc

    def _parsed(self, stream: str, config: FileStream, entry: FileEntry, schema: pa.Schema,
                names: list[str]) -> Iterator[pa.RecordBatch]:
        # Parquet reads only the selected columns; text formats parse whole lines anyway.
        keep = set(names) if config.format == "parquet" else None
        data = pa.schema([f for f in schema if f.name not in (FILE, MODIFIED) and (keep is None or f.name in keep)])
        out = pa.schema([schema.field(n) for n in names])
        rows = 0
        for batch in batches(self.fs, entry, config, data, self.config.sample_bytes, self.config.batch_size):
            try:
                conformed, extra = conform(batch, data)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise BadFile(entry.key, f"a value does not fit the stream's schema: {exc}",
                              f"rows {rows + 1}-{rows + batch.num_rows}") from exc
            if extra:
                self.warnings.add(stream, "columns_ignored", None, f"columns {extra} are not in the stream's "
                                  "schema yet and were not loaded; discover the connection to add them", count=0,
                                  subject=",".join(extra))
            rows += batch.num_rows
            columns = []
            for name in names:
                if name == FILE:
                    columns.append(pa.array([entry.key] * conformed.num_rows, pa.string()))
                elif name == MODIFIED:
                    columns.append(pa.array([entry.modified] * conformed.num_rows, FILE_FIELDS[1].type))
                else:
                    columns.append(conformed.column(name))
            yield pa.RecordBatch.from_arrays(columns, schema=out)

    def _infer(self, stream: FileStream, files: list[FileEntry]) -> pa.Schema:
        """The stream's schema from its newest files (a schema change shows in new files first)."""
        sample = files[-self.config.sample_files:]
        schemas, bad = [], []
        for entry in reversed(sample):
            try:
                schemas.append(file_schema(self.fs, entry, stream, self.config.sample_bytes))
            except BadFile as exc:
                log.warning("sample file unreadable", extra=fields(stream=stream.name, file=entry.key,
                                                                   error=exc.message))
                bad.append(exc)
            except OSError as exc:
                raise self.translate(exc) from exc
        if bad and not schemas:
            raise SourceError(f"stream {stream.name!r}: no sampled file could be read; {bad[0].message}",
                              FailureKind.TERMINAL, stream=stream.name, file=bad[0].key)
        merged = merge(reversed(schemas))
        data = [f for f in merged if f.name not in (FILE, MODIFIED)]
        return pa.schema(data + (list(FILE_FIELDS) if self.config.file_columns else []))

    @staticmethod
    def _source_type(stream: FileStream, field: pa.Field) -> str:
        if field.name in (FILE, MODIFIED):
            return "file metadata"
        return f"{stream.format} {field.type}"


def vanished(stream: str, entry: FileEntry) -> SourceError:
    """A listed file that is gone when read: deleted or moved meanwhile. Transient: the retry lists the
    files again, so it reads what is there then (and a file source's ledger never records this one)."""
    return SourceError(f"stream {stream!r}: file {entry.key!r} was deleted (or moved) after it was listed, "
                       "while the stream was being read; a retry lists the files again",
                       FailureKind.TRANSIENT, stream=stream, file=entry.key)
