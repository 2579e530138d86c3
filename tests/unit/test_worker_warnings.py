"""A run carries its warnings: what a source converted by rule reaches the stream's stats."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from tidemark.connectors import Catalog, ConnectorConfig, Source, StreamState
from tidemark.events import DestinationSpec, StreamSpec, StreamWarning
from tidemark.lakehouse import Lakehouse
from tidemark_ingest.worker.load import Progress, load_stream

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("born", pa.date32())])


class _ZeroDates(Source):
    """Reads two batches; each has a zero date that the rule turns into NULL."""

    type_name = "zero_dates"
    title = "Zero dates"
    config_model = ConnectorConfig

    def check(self) -> None:
        pass

    def discover(self) -> Catalog:
        return Catalog(streams=[])

    def arrow_schema(self, stream: StreamSpec) -> pa.Schema:
        return SCHEMA

    def read(self, stream: StreamSpec, state: StreamState | None) -> Iterator[pa.RecordBatch]:
        self.warnings.add(stream.name, "type_as_text", "notes", "notes are read as text", count=0)
        for start in (1, 3):
            self.warnings.add(stream.name, "value_as_null", "born", "zero dates are read as NULL")
            yield pa.record_batch([pa.array([start, start + 1]), pa.array([None, None], pa.date32())], schema=SCHEMA)


def test_each_kind_of_conversion_is_reported_with_its_count(lake: Lakehouse) -> None:
    source = _ZeroDates(ConnectorConfig())
    stats = load_stream(lake, source, DestinationSpec(namespace="w"), StreamSpec(name="db.people"), "run-w",
                        Progress())
    assert stats.status == "succeeded"
    assert sorted(stats.warnings, key=lambda w: w.kind) == [
        StreamWarning(kind="type_as_text", column="notes", count=0, message="notes are read as text"),
        StreamWarning(kind="value_as_null", column="born", count=2, message="zero dates are read as NULL"),
    ]
    # Taken once: the next run of the stream starts counting from zero.
    again = load_stream(lake, source, DestinationSpec(namespace="w"), StreamSpec(name="db.people"), "run-w2",
                        Progress())
    assert [w.count for w in again.warnings if w.kind == "value_as_null"] == [2]
