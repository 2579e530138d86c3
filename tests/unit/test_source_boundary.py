"""The worker reads sources through the connector boundary: a secret a driver error echoes,
in clear or URL-encoded, never reaches the run's error, and the failure kind is kept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal
from urllib.parse import quote, quote_plus

import pyarrow as pa
import pytest
from pydantic import Field, SecretStr

from tidemark.connectors import Catalog, ConnectorConfig, Source, StreamState
from tidemark.errors import FailureKind, SourceError
from tidemark.events import DestinationSpec, StreamSpec
from tidemark.lakehouse import Lakehouse, table_identifier
from tidemark_ingest.worker.load import Progress, load_stream

pytestmark = pytest.mark.unit

PASSWORD = "p@ss/w:rd 1+%"
FORMS = (PASSWORD, quote(PASSWORD, safe=""), quote_plus(PASSWORD))
SCHEMA = pa.schema([pa.field("id", pa.int64())])


class LeakyConfig(ConnectorConfig):
    password: SecretStr = Field(description="Password.")
    fail: Literal["schema", "read", "driver"] = Field(description="Where the source fails.")


def dsn(password: str) -> str:
    return f"postgresql://app:{quote(password, safe='')}@db/shop (password {password})"


class LeakySource(Source):
    """Fails the way drivers do: the DSN, password and all, in the message."""

    type_name: ClassVar[str] = "leaky"
    title: ClassVar[str] = "Leaky (test)"
    config_model: ClassVar[type[ConnectorConfig]] = LeakyConfig

    @property
    def _config(self) -> LeakyConfig:
        assert isinstance(self.config, LeakyConfig)
        return self.config

    def check(self) -> None:
        pass

    def discover(self) -> Catalog:
        return Catalog(streams=[])

    def arrow_schema(self, stream: StreamSpec) -> pa.Schema:
        if self._config.fail == "schema":
            raise SourceError(f"cannot read the catalog of {dsn(self._config.password.get_secret_value())}",
                              FailureKind.CONFIG)
        return SCHEMA

    def read(self, stream: StreamSpec, state: StreamState | None) -> Iterator[pa.RecordBatch]:
        yield pa.RecordBatch.from_pydict({"id": [1, 2]}, schema=SCHEMA)
        password = self._config.password.get_secret_value()
        if self._config.fail == "driver":
            raise ConnectionResetError(f"connection to {dsn(password)} lost")
        raise SourceError(f"the server at {dsn(password)} is unavailable right now", FailureKind.TRANSIENT)


@pytest.mark.parametrize(("fail", "kind", "words"), [
    ("schema", "config", "cannot read the catalog of postgresql://app:"),
    ("read", "transient", "is unavailable right now"),
    ("driver", "transient", "ConnectionResetError: connection to postgresql://app:"),
])
def test_a_secret_in_a_source_error_never_reaches_the_run_error(
    lake: Lakehouse, fail: Literal["schema", "read", "driver"], kind: str, words: str
) -> None:
    source = LeakySource(LeakyConfig(password=SecretStr(PASSWORD), fail=fail))
    destination = DestinationSpec(namespace="leaks")
    stream = StreamSpec(name="main.orders")
    stats = load_stream(lake, source, destination, stream, "run-1", Progress())
    assert stats.status == "failed"
    assert stats.error is not None
    assert stats.error.kind == kind
    assert words in stats.error.message
    assert "**********" in stats.error.message
    serialised = stats.model_dump_json()
    for form in FORMS:
        assert form not in serialised
    # The writer never committed the half-read stream.
    assert not lake.catalog.table_exists(table_identifier(destination, stream.name))
