"""Sources failing mid-run: the network resets a connection mid-read, the server cancels a read at its
``statement_timeout``, a file disappears while its stream is being read. Each fails the stream with an
error that names the cause and is of kind ``transient`` (so the orchestrator retries the run within the
pipeline's ``retries``; that loop is tested end to end in
``tests/e2e/test_embedded_and_cli.py::test_a_transient_failure_is_retried_until_it_succeeds_and_a_config_error_is_not``),
and the table keeps what the last good run committed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.fixtures.flaky_proxy import flaky_proxy
from tests.fixtures.slow_source import add_rows, slow_items
from tests.integration.files_fixtures import Bucket
from tidemark.connectors.sql.postgres import PostgresConfig, PostgresSource
from tidemark.events import DestinationSpec, StreamSpec, StreamStats, SyncMode
from tidemark.lakehouse import Lakehouse
from tidemark_ingest.worker.load import Progress, load_stream
from tidemark_testing.postgres import create_database, drop_database

pytestmark = pytest.mark.integration
DESTINATION = DestinationSpec(namespace="faults")
APPEND = StreamSpec(name="public.slow_items", sync_mode=SyncMode.INCREMENTAL_APPEND, cursor_field="id")


@pytest.fixture
def slow(pg_admin_dsn: str) -> Iterator[dict[str, Any]]:
    url = create_database(pg_admin_dsn, "tidemark_src_faults")
    try:
        yield slow_items(url)
    finally:
        drop_database(pg_admin_dsn, url)


def ids(lake: Lakehouse, table: str) -> list[int]:
    return sorted(lake.catalog.load_table(table).scan(selected_fields=("id",)).to_arrow().column("id").to_pylist())


def load(lake: Lakehouse, config: dict[str, Any], run_id: str, progress: Progress | None = None) -> StreamStats:
    source = PostgresSource(PostgresConfig(**config))
    try:
        return load_stream(lake, source, DESTINATION, APPEND, run_id, progress or Progress())
    finally:
        source.close()


def test_a_connection_reset_mid_read_is_a_transient_failure_and_the_table_keeps_its_rows(
    lake: Lakehouse, slow: dict[str, Any]
) -> None:
    add_rows(slow["conninfo"], 1, 100, delay=0)
    config = slow["config"]
    assert load(lake, config, "run-1").status == "succeeded"
    add_rows(slow["conninfo"], 101, 400, delay=0.01)  # a read of 3 s
    with flaky_proxy(str(config["host"]), int(config["port"])) as proxy:
        progress = Progress()
        outcome: list[StreamStats] = []
        reading = threading.Thread(target=lambda: outcome.append(
            load(lake, {**config, "port": proxy.port}, "run-2", progress)))
        reading.start()
        deadline = time.monotonic() + 30
        while progress.rows_read == 0:  # rows arrived: the read is under way
            assert reading.is_alive(), outcome
            assert time.monotonic() < deadline, "no row was read"
            time.sleep(0.02)
        assert proxy.reset() >= 1
        reading.join(60)
    [failed] = outcome
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.kind == "transient", failed.error
    assert "is unavailable right now" in failed.error.message, failed.error
    assert ids(lake, failed.table) == list(range(1, 101)), "nothing of the broken read was committed"
    assert load(lake, config, "run-3").status == "succeeded"  # the retry reads on from the committed cursor
    assert ids(lake, failed.table) == list(range(1, 401))


def test_a_statement_timeout_is_a_transient_failure_that_names_the_setting(
    lake: Lakehouse, slow: dict[str, Any]
) -> None:
    add_rows(slow["conninfo"], 1, 50, delay=0.05)  # a read of 2.5 s
    database = slow["config"]["database"]
    with psycopg.connect(slow["conninfo"], autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" SET statement_timeout = 500')
    failed = load(lake, slow["config"], "run-1")
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.kind == "transient", failed.error
    assert "statement_timeout" in failed.error.message, failed.error.message
    assert not lake.catalog.table_exists(failed.table)


def test_a_file_deleted_while_its_stream_is_read_is_named_and_transient(moto_endpoint: str, s3_bucket: str,
                                                                        lake: Lakehouse) -> None:
    bucket = Bucket(moto_endpoint, s3_bucket)
    for part in range(3):
        bucket.put(f"in/part-{part}.csv", "id,name\n" + "".join(f"{part * 10 + i},n{i}\n" for i in range(10)))
    source = bucket.source([{"name": "parts", "glob": "*.csv", "format": "csv"}], prefix="in",
                           file_columns=False, batch_size=5)
    stream = StreamSpec(name="parts")
    read = source.read
    deleted: list[bool] = []

    def read_and_delete(spec: StreamSpec, state: Any) -> Iterator[Any]:
        for batch in read(spec, state):
            if not deleted:  # the files are listed and the first one is being read: the last one goes
                bucket.delete("in/part-2.csv")
                deleted.append(True)
            yield batch

    source.read = read_and_delete  # type: ignore[method-assign,assignment]
    failed = load_stream(lake, source, DestinationSpec(namespace="faults"), stream, "run-1", Progress())
    assert deleted
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.kind == "transient", failed.error
    assert "file 'in/part-2.csv' was deleted" in failed.error.message, failed.error.message
    assert not lake.catalog.table_exists(failed.table)
    source.read = read  # type: ignore[method-assign]
    again = load_stream(lake, source, DestinationSpec(namespace="faults"), stream, "run-2", Progress())
    assert (again.status, again.rows_written) == ("succeeded", 20)
