"""What every REST source shares: streams found through the vendor's metadata API, column
selection, cursor bounds by sync mode, batching, and the one client per connection."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field

from tidemark.connectors.base import Catalog, ColumnInfo, ConnectorConfig, Source, StreamInfo, StreamState
from tidemark.connectors.rest.http import RestClient
from tidemark.connectors.rest.records import Batcher
from tidemark.connectors.sql.cursor import cursor_bound
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode


class RestConfig(ConnectorConfig):
    """Settings every REST connection has besides its credentials."""

    requests_per_second: float = Field(default=5.0, gt=0, le=1000,
                                       description="Most requests per second this connection sends (its own limit, "
                                                   "below the vendor's, which other integrations share).")
    timeout_seconds: float = Field(default=60.0, gt=0, le=600, description="Seconds to wait for an answer.")
    max_attempts: int = Field(default=8, ge=1, le=20,
                              description="Tries per request on 429, 5xx and timeouts before the run fails.")
    batch_size: int = Field(default=10_000, ge=1, le=1_000_000, description="Records per Arrow batch.")

    url_field: ClassVar[str] = "base_url"
    """The field holding the vendor's URL: the egress check names it when it refuses the host."""

    def endpoints(self) -> dict[str, str]:
        return {self.url_field: str(getattr(self, self.url_field))}


@dataclass
class RestStream:
    """A stream as the vendor's metadata describes it: columns with Arrow types, the key,
    and what else the vendor module needs to read it (``extra``)."""

    name: str
    fields: list[tuple[str, pa.DataType, str]]
    primary_key: list[str]
    cursor_candidates: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    def info(self) -> StreamInfo:
        return StreamInfo(
            name=self.name,
            columns=[ColumnInfo(name=n, type=str(t), nullable=n not in self.primary_key, source_type=s)
                     for n, t, s in self.fields],
            primary_key=self.primary_key, cursor_candidates=self.cursor_candidates,
        )

    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(n, t, nullable=n not in self.primary_key) for n, t, _ in self.fields])

    def type_of(self, column: str) -> pa.DataType:
        return self.schema().field(column).type


class RestSource(Source):
    """A vendor module implements :meth:`_make_client`, :meth:`_discover` and :meth:`_records`."""

    config: RestConfig
    # One client, one token and one rate limit per connection: a vendor's streams take turns.
    concurrent_streams: ClassVar[bool] = False

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        self._client: RestClient | None = None
        # How the client waits between retries; tests put a recorder here before the first request.
        self.sleep: Callable[[float], None] = time.sleep
        self._streams: dict[str, RestStream] | None = None

    # -- for vendor modules ----------------------------------------------------

    @abc.abstractmethod
    def _make_client(self) -> RestClient: ...

    @abc.abstractmethod
    def _discover(self) -> list[RestStream]:
        """Every stream with its schema, asked of the vendor's metadata API."""

    @abc.abstractmethod
    def _records(self, stream: RestStream, spec: StreamSpec, bound: tuple[str, Any] | None,
                 columns: list[str]) -> Iterator[dict[str, Any]]:
        """The stream's records as dicts keyed by column name; with ``bound`` (``(op, value)``
        on ``spec.cursor_field``) only those past it, in cursor order."""

    @property
    def client(self) -> RestClient:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    # -- the protocol ----------------------------------------------------------------

    def discover(self) -> Catalog:
        self._streams = {s.name: s for s in self._discover()}
        return Catalog(streams=[s.info() for s in self._streams.values()])

    def stream(self, name: str) -> RestStream:
        if self._streams is None:
            self.discover()
        assert self._streams is not None
        found = self._streams.get(name)
        if found is None:
            raise SourceError(f"stream {name!r} does not exist in this {self.title} account; "
                              f"streams: {', '.join(sorted(self._streams)) or 'none'}", FailureKind.CONFIG)
        return found

    def _columns(self, spec: StreamSpec, stream: RestStream) -> list[str]:
        names = [n for n, _, _ in stream.fields]
        if spec.columns is None:
            return names
        unknown = [c for c in spec.columns if c not in names]
        if unknown:
            raise SourceError(f"stream {spec.name!r} has no column {', '.join(map(repr, unknown))}",
                              FailureKind.CONFIG)
        return list(spec.columns)

    def arrow_schema(self, stream: StreamSpec) -> pa.Schema:
        found = self.stream(stream.name)
        full = found.schema()
        return pa.schema([full.field(c) for c in self._columns(stream, found)])

    def declared_key(self, stream: StreamSpec) -> list[str]:
        return list(self.stream(stream.name).primary_key)

    def read(self, stream: StreamSpec, state: StreamState | None) -> Iterator[pa.RecordBatch]:
        found = self.stream(stream.name)
        columns = self._columns(stream, found)
        bound = None
        if stream.sync_mode is not SyncMode.FULL_REFRESH:
            if not stream.cursor_field:
                raise SourceError(f"stream {stream.name!r}: {stream.sync_mode.value} needs a cursor field",
                                  FailureKind.CONFIG)
            if stream.cursor_field not in found.cursor_candidates:
                raise SourceError(f"stream {stream.name!r}: {stream.cursor_field!r} cannot be a cursor; use one of "
                                  f"{', '.join(found.cursor_candidates) or 'none (full refresh only)'}",
                                  FailureKind.CONFIG)
            bound = cursor_bound(stream, state, found.type_of(stream.cursor_field))
        schema = self.arrow_schema(stream)
        batcher = Batcher(schema, self.config.batch_size, stream.name, self.warnings)
        yield from batcher.batches(self._records(found, stream, bound, columns))

    def check(self) -> None:
        self.discover()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
