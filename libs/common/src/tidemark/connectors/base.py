"""The connector protocol every source implements: ``check``, ``discover``, ``read``.

Sources are synchronous (drivers are); services call them in a worker thread and
the worker process calls them directly. ``read`` yields Arrow record batches of
bounded size, so memory stays flat whatever the table size.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, StreamWarning


class ConnectorConfig(BaseModel):
    """Base of every connector's config. Secret fields are ``SecretStr``: stored encrypted,
    never returned by the API, never logged."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def secret_fields(cls) -> list[str]:
        return [name for name, f in cls.model_fields.items() if f.annotation in (SecretStr, SecretStr | None)]

    def endpoints(self) -> dict[str, str]:
        """``{field: url}`` of every user-given host this connection contacts, for the egress check
        (:mod:`tidemark.connectors.egress`); a database connection's host is the user's own network."""
        return {}

    def reveal(self) -> dict[str, Any]:
        """The config as plain JSON, secrets included: only for storage and for workers."""
        data = self.model_dump(mode="json")
        for name in self.secret_fields():
            value = getattr(self, name)
            data[name] = value.get_secret_value() if value is not None else None
        return data


class ColumnInfo(BaseModel):
    name: str
    type: str = Field(description="Arrow type, e.g. `int64`, `decimal128(12, 2)`, `timestamp[us, tz=UTC]`.")
    nullable: bool = True
    source_type: str = Field(description="The type as the source declares it.")
    default: str | None = Field(
        default=None, description="The column's default as the source declares it (SQL text); None: none, or the "
                                  "source does not say.",
    )


class StreamInfo(BaseModel):
    name: str
    columns: list[ColumnInfo]
    primary_key: list[str] = Field(default_factory=list)
    cursor_candidates: list[str] = Field(default_factory=list)

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


class Catalog(BaseModel):
    streams: list[StreamInfo]

    def stream(self, name: str) -> StreamInfo | None:
        return next((s for s in self.streams if s.name == name), None)


class StreamState(BaseModel):
    """Where an incremental stream stopped: the cursor value of the last committed run."""

    cursor_field: str | None = None
    cursor_value: Any = None


class KeyRange(BaseModel):
    """One slice of a stream by primary-key range, ``lower <= key < upper``; a missing bound is open.

    Bounds are the key's text form, so a range is hashable, serialisable and can be
    handed to another process; the source casts them back to the column's type.
    """

    model_config = ConfigDict(frozen=True)

    column: str
    lower: str | None = None
    upper: str | None = None


class ReadWarnings:
    """Conversions a source made by a documented rule, counted per stream, kind and column.

    A source adds to it while it reads (possibly in a reader thread); the worker takes a
    stream's warnings once that stream is loaded and reports them with the run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str | None, str | None], tuple[int, str]] = {}

    def add(self, stream: str, kind: str, column: str | None, message: str, count: int = 1,
            subject: str | None = None) -> None:
        """Count ``count`` more values of ``kind``; ``count=0`` records a column-wide conversion once.
        ``subject`` keeps warnings of one kind apart that are not a column's (a file source's skipped files)."""
        key = (stream, kind, column, subject)
        with self._lock:
            seen, _ = self._counts.get(key, (0, message))
            self._counts[key] = (seen + count, message)

    def take(self, stream: str) -> list[StreamWarning]:
        """The stream's warnings, forgotten here (a stream read again starts from zero)."""
        with self._lock:
            keys = [k for k in self._counts if k[0] == stream]
            found = [(k, self._counts.pop(k)) for k in keys]
        return [StreamWarning(kind=kind, column=column, count=count, message=message)
                for (_, kind, column, _), (count, message) in found]


class Source(abc.ABC):
    type_name: ClassVar[str]
    title: ClassVar[str]
    config_model: ClassVar[type[ConnectorConfig]]
    # Whether a worker may read several streams of one source at once, each from its own thread
    # (each read opens its own connection; the source's shared state is safe across threads).
    concurrent_streams: ClassVar[bool] = True

    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config
        self.warnings = ReadWarnings()
        # Per stream: the rows its last read counted in the read's own snapshot (see snapshot_rows).
        self.snapshot_counts: dict[str, int] = {}

    @abc.abstractmethod
    def check(self) -> None:
        """Raise :class:`~tidemark.errors.SourceError` with a user-facing message if unusable."""

    @abc.abstractmethod
    def discover(self) -> Catalog: ...

    @abc.abstractmethod
    def arrow_schema(self, stream: StreamSpec) -> pa.Schema:
        """The schema ``read`` yields for ``stream`` (selected columns only)."""

    @abc.abstractmethod
    def read(self, stream: StreamSpec, state: StreamState | None) -> Iterator[pa.RecordBatch]:
        """Yield batches of the stream; with ``state``, only rows past its cursor."""

    def prepare(self, streams: Sequence[StreamSpec]) -> None:  # noqa: B027 - optional hook
        """Called once before a run reads ``streams``: a source that looks each stream up (its columns,
        its key) may look them all up at once here, instead of once per stream."""

    def source_key(self, stream: StreamSpec) -> list[str]:
        """The primary key the source declares for ``stream`` when all of it is among the selected
        columns, else ``[]``; tables record it as their identifier fields."""
        key = self.declared_key(stream)
        return key if stream.columns is None or set(key) <= set(stream.columns) else []

    def final_state(self, stream: StreamSpec) -> StreamState | None:
        """The state to commit once ``read`` of ``stream`` has yielded its last batch, for a source that
        tracks its own (a file source's ledger of files read); None: the writer commits the largest
        value of the cursor column, as for SQL sources."""
        return None

    def snapshot_rows(self, stream: StreamSpec) -> int | None:
        """How many rows the last ``read`` of ``stream`` should have yielded, counted by the source in the
        same snapshot as the rows it read (a ``COUNT`` in the read's REPEATABLE READ transaction); None
        when the source cannot count so. Asked (once) after the read is exhausted; the worker fails the
        stream, uncommitted, when it differs from the rows read."""
        return self.snapshot_counts.pop(stream.name, None)

    def declared_key(self, stream: StreamSpec) -> list[str]:
        """The primary key the source declares for ``stream``; ``[]`` when it declares none."""
        return []

    def partitions(self, stream: StreamSpec, count: int) -> list[KeyRange]:
        """Split ``stream`` into about ``count`` key ranges that together cover it, for
        :meth:`read_partition` to read in parallel; ``[]`` when the source cannot split it."""
        return []

    def read_partition(
        self, stream: StreamSpec, state: StreamState | None, partition: KeyRange
    ) -> Iterator[pa.RecordBatch]:
        """Like :meth:`read`, limited to the rows of ``partition``."""
        raise SourceError(f"stream {stream.name!r}: {self.title} sources cannot be read by key range",
                          FailureKind.CONFIG)

    def fingerprint(self) -> str | None:
        """A short hash of everything :meth:`discover` would report, from one cheap catalog query;
        it changes when the catalog does. ``None``: the source cannot tell cheaply (callers discover)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
