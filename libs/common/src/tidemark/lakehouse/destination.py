"""One entry point for both destinations: table names, state and writes by ``DestinationSpec.kind``."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import pyarrow as pa
from pyiceberg.catalog import Catalog

from tidemark.connectors.base import StreamState
from tidemark.events import DestinationSpec
from tidemark.lakehouse import naming
from tidemark.lakehouse.catalog import close_catalog, open_catalog
from tidemark.lakehouse.iceberg import read_state, write_stream
from tidemark.lakehouse.parquet import read_parquet_state, write_parquet_stream
from tidemark.lakehouse.request import WriteOptions, WriteRequest
from tidemark.lakehouse.settings import LakehouseSettings
from tidemark.lakehouse.state import WriteResult


def table_identifier(destination: DestinationSpec, stream_name: str) -> str:
    """``sales.orders`` → ``<namespace>.<prefix>sales__orders`` (the rule: :mod:`tidemark.lakehouse.naming`)."""
    return naming.table_identifier(destination.namespace, destination.table_prefix, stream_name)


class Lakehouse:
    """The destinations of one process. Opens the Iceberg catalog only when a stream needs it."""

    def __init__(self, settings: LakehouseSettings) -> None:
        self.settings = settings
        self._catalog: Catalog | None = None
        self._opening = threading.Lock()  # streams loaded at once share one catalog (one connection pool)

    @property
    def catalog(self) -> Catalog:
        with self._opening:
            if self._catalog is None:
                self._catalog = open_catalog(self.settings)
            return self._catalog

    def close(self) -> None:
        if self._catalog is not None:
            close_catalog(self._catalog)
            self._catalog = None

    def read_state(self, destination: DestinationSpec, identifier: str) -> StreamState | None:
        if destination.kind == "parquet":
            return read_parquet_state(self.settings, identifier)
        return read_state(self.catalog, identifier)

    def write(self, destination: DestinationSpec, request: WriteRequest,
              batches: Iterable[pa.RecordBatch]) -> WriteResult:
        """Write one stream to ``destination`` with this process's tuning (see :class:`WriteOptions`)."""
        options = WriteOptions(merge_strategy=self.settings.merge_strategy)
        if destination.kind == "parquet":
            return write_parquet_stream(self.settings, request, batches, options)
        return write_stream(self.catalog, request, batches, options)
