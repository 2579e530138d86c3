"""A run's streams load concurrently, up to ``stream_concurrency``: the real worker's ``ingest`` reads
real PostgreSQL tables and writes them with the real Iceberg writer into a SQLite catalog. The source
records how many reads are in flight at once (a read waits, up to a few seconds, for the limit's worth
to be in flight, so the overlap is observed, not inferred from timings)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from tidemark.connectors import StreamState
from tidemark.connectors.sql.postgres import PostgresConfig, PostgresSource
from tidemark.events import DestinationSpec, PipelineSpec, RunRequested, RunStatus, StreamSpec
from tidemark.ids import new_id
from tidemark.lakehouse import Lakehouse
from tidemark.settings import DatabaseSettings, PlatformSettings
from tidemark_ingest.settings import IngestSettings
from tidemark_ingest.worker import load
from tidemark_ingest.worker.load import STOPPED, Outcome, Progress, ingest
from tidemark_testing.postgres import create_database, drop_database

pytestmark = pytest.mark.integration

ROWS = {f"public.t{i}": 10 + 7 * i for i in range(6)}  # each table its own row count
GATE_SECONDS = 5.0


class Overlapping(PostgresSource):
    """A PostgreSQL source that counts its reads in flight and keeps the largest count seen. Each read
    waits (at most GATE_SECONDS) until ``expect`` reads are in flight, so a worker that overlaps its
    streams shows it; ``hold`` keeps every read, after its first batch, until the run is asked to stop."""

    def __init__(self, config: PostgresConfig, expect: int, hold: Progress | None = None,
                 gate_seconds: float = GATE_SECONDS) -> None:
        super().__init__(config)
        self.expect, self.hold, self.gate_seconds = expect, hold, gate_seconds
        self.in_flight = 0
        self.most = 0
        self.changed = threading.Condition()

    def _stopping(self) -> bool:
        return self.hold is not None and self.hold.stop_requested

    def read(self, stream: StreamSpec, state: StreamState | None) -> Iterator[pa.RecordBatch]:
        with self.changed:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.in_flight >= self.expect, timeout=self.gate_seconds)
        try:
            for i, batch in enumerate(super().read(stream, state)):
                yield batch
                if i == 0 and self.hold is not None:
                    with self.changed:
                        self.changed.wait_for(self._stopping, timeout=30)
        finally:
            with self.changed:
                self.in_flight -= 1
                self.changed.notify_all()


@pytest.fixture(scope="module")
def source_db(pg_admin_dsn: str) -> Iterator[dict[str, Any]]:
    url = create_database(pg_admin_dsn, "tidemark_src_many")
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for stream, rows in ROWS.items():
            name = stream.split(".")[1]
            conn.execute(f"CREATE TABLE {name} (id bigint PRIMARY KEY, label text)")
            conn.execute(f"INSERT INTO {name} SELECT g, 'row ' || g FROM generate_series(1, %s) g",
                         (rows,))
    db = make_url(url)
    try:
        yield {"host": db.host or "127.0.0.1", "port": db.port or 5432, "database": db.database,
               "user": db.username or "postgres", "password": db.password or "", "batch_size": 5}
    finally:
        drop_database(pg_admin_dsn, url)


def settings_for(tmp_path: Path, concurrency: int) -> IngestSettings:
    return IngestSettings(
        platform=PlatformSettings(home=tmp_path, internal_token=SecretStr("internal")),
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/ingest.db"),
        bus="memory", stream_concurrency=concurrency,
    )


def request(streams: list[str]) -> RunRequested:
    return RunRequested(run_id=new_id(), trigger="manual", pipeline=PipelineSpec(
        pipeline_id=uuid.UUID("0191a6f0-0000-7000-8000-0000000000aa"), name="many",
        connection_id=uuid.UUID("0191a6f0-0000-7000-8000-0000000000bb"),
        streams=[StreamSpec(name=s) for s in streams], destination=DestinationSpec(namespace="many")))


def run(monkeypatch: pytest.MonkeyPatch, settings: IngestSettings, source: PostgresSource, streams: list[str],
        progress: Progress | None = None) -> Outcome:
    monkeypatch.setattr(load, "open_source", lambda *_: source)
    return ingest(settings, request(streams), progress or Progress())


def tables(settings: IngestSettings) -> dict[str, tuple[int, int]]:
    """Per table of the namespace: (rows, snapshots)."""
    lake = Lakehouse(settings.lakehouse)
    try:
        found = {}
        for _, name in lake.catalog.list_tables("many"):
            table = lake.catalog.load_table(f"many.{name}")
            ids = table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist()
            assert len(set(ids)) == len(ids), f"{name}: a row was written twice"
            found[name] = (len(ids), len(table.snapshots()))
        return found
    finally:
        lake.close()


def test_streams_load_concurrently_up_to_the_limit_each_committing_its_table_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source_db: dict[str, Any]
) -> None:
    settings = settings_for(tmp_path, concurrency=3)
    source = Overlapping(PostgresConfig(**source_db), expect=3)
    outcome = run(monkeypatch, settings, source, list(ROWS))
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    assert source.most == 3, f"at most 3 streams at once, and 3 did overlap; saw {source.most}"
    assert [s.stream for s in outcome.streams] == list(ROWS), "stats stay in the pipeline's order"
    assert {s.stream: s.rows_written for s in outcome.streams} == ROWS
    assert tables(settings) == {s.split(".")[1]: (rows, 1) for s, rows in ROWS.items()}


def test_one_stream_at_a_time_when_the_limit_is_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source_db: dict[str, Any]
) -> None:
    settings = settings_for(tmp_path, concurrency=1)
    # Each read waits a moment for a second one, which must never come.
    source = Overlapping(PostgresConfig(**source_db), expect=2, gate_seconds=0.5)
    streams = list(ROWS)[:2]
    outcome = run(monkeypatch, settings, source, streams)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    assert source.most == 1


def test_a_failing_stream_leaves_the_others_committed_and_the_run_partially_succeeded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source_db: dict[str, Any]
) -> None:
    settings = settings_for(tmp_path, concurrency=3)
    streams = ["public.t0", "public.missing", "public.t1", "public.t2"]
    outcome = run(monkeypatch, settings, PostgresSource(PostgresConfig(**source_db)), streams)
    assert outcome.status is RunStatus.PARTIALLY_SUCCEEDED
    assert outcome.error is not None
    assert outcome.error.stream == "public.missing"
    assert [(s.stream, s.status) for s in outcome.streams] == [
        ("public.t0", "succeeded"), ("public.missing", "failed"), ("public.t1", "succeeded"),
        ("public.t2", "succeeded")]
    assert tables(settings) == {"t0": (ROWS["public.t0"], 1), "t1": (ROWS["public.t1"], 1),
                                "t2": (ROWS["public.t2"], 1)}

    every = run(monkeypatch, settings, PostgresSource(PostgresConfig(**source_db)), ["public.gone", "public.nope"])
    assert every.status is RunStatus.FAILED, "every stream failed: the run failed, as with one at a time"


def test_a_stop_with_several_streams_in_flight_commits_none_of_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source_db: dict[str, Any]
) -> None:
    settings = settings_for(tmp_path, concurrency=3)
    streams = list(ROWS)
    first = run(monkeypatch, settings, PostgresSource(PostgresConfig(**source_db)), streams)
    assert first.status is RunStatus.SUCCEEDED, first.error
    before = tables(settings)

    progress = Progress()
    source = Overlapping(PostgresConfig(**source_db), expect=3, hold=progress)
    outcome: list[Outcome] = []
    worker = threading.Thread(target=lambda: outcome.append(run(monkeypatch, settings, source, streams, progress)))
    worker.start()
    with source.changed:
        assert source.changed.wait_for(lambda: source.in_flight == 3, timeout=30), "three reads in flight"
    assert sorted(progress.in_flight) == sorted(streams[:3])
    progress.stop()
    with source.changed:
        source.changed.notify_all()
    worker.join(60)
    [stopped] = outcome
    assert stopped.status is RunStatus.CANCELLED
    assert stopped.error is not None
    assert stopped.error.message == STOPPED
    assert {s.stream: s.status for s in stopped.streams} == dict.fromkeys(streams[:3], "failed"), \
        "the streams in flight are reported stopped; those not begun are not started"
    assert all(s.error is not None and s.error.message == STOPPED for s in stopped.streams)
    assert tables(settings) == before, "no stream in flight committed: every table keeps its one snapshot"
