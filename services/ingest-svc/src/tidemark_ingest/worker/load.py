"""The blocking part of a run: fetch the connection, read each stream, write it. Runs in a thread."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from tidemark.connectors import Source, StreamState, get_connector
from tidemark.connectors.boundary import secret_values, source_batches, source_call
from tidemark.connectors.client import fetch_connection_config
from tidemark.errors import ConfigError, ReconciliationError, TidemarkError
from tidemark.events import (
    DestinationSpec,
    PipelineSpec,
    Reconciliation,
    RunRequested,
    RunStatus,
    StreamSpec,
    StreamStats,
    StreamWarning,
    SyncMode,
)
from tidemark.events.contracts import RunError
from tidemark.lakehouse import Lakehouse, WriteRequest, table_identifier
from tidemark.lakehouse.state import CONNECTION_ID, PIPELINE_ID, PIPELINE_NAME, SOURCE_STREAM
from tidemark.logs import fields, log_context
from tidemark.redact import REDACT
from tidemark_ingest.settings import IngestSettings
from tidemark_ingest.worker.checks import check_stream
from tidemark_ingest.worker.prefetch import prefetched

log = logging.getLogger(__name__)

INTERNAL_ERROR = "unexpected internal error; the worker's log has the details"
STOPPED = "stopped before it finished; nothing of it was committed"


class Stopped(Exception):  # noqa: N818 - a signal, not an error
    """Raised in a loading thread when the worker was asked to stop (SIGTERM): the stream being
    written is abandoned before its commit, so its table stays as it was."""

    rows_read = 0  # of the stream it stopped, once known


class StreamProgress:
    """Rows read so far by one stream of the run; its counter is the stream's own, its stop the run's."""

    def __init__(self, run: Progress, stream: str) -> None:
        self.run, self.stream = run, stream
        self.rows_read = 0
        self.done = False

    def count(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            # Checked between batches, so the writer never sees the end of its input and never commits.
            self.run.check()
            self.rows_read += batch.num_rows
            yield batch


class Progress:
    """What the run's loading threads are doing, read by the heartbeat from another thread.

    Several streams may be in flight at once (``stream_concurrency``): ``rows_read`` is the run's
    total over every stream begun so far (what jobs-svc shows while the run goes on, and what
    ``run.finished`` sums up at the end); ``stream`` names the in-flight stream begun last."""

    def __init__(self) -> None:
        self.stop_requested = False
        self._lock = threading.Lock()
        self._streams: list[StreamProgress] = []

    def begin(self, stream: str) -> StreamProgress:
        begun = StreamProgress(self, stream)
        with self._lock:
            self._streams.append(begun)
        return begun

    def end(self, begun: StreamProgress) -> None:
        begun.done = True

    @property
    def stream(self) -> str | None:
        with self._lock:
            live = [s.stream for s in self._streams if not s.done]
            last = self._streams[-1].stream if self._streams else None
        return live[-1] if live else last

    @property
    def in_flight(self) -> list[str]:
        with self._lock:
            return [s.stream for s in self._streams if not s.done]

    @property
    def rows_read(self) -> int:
        with self._lock:
            return sum(s.rows_read for s in self._streams)

    def stop(self) -> None:
        """Ask every loading thread to stop at its next batch (the SIGTERM handler calls this)."""
        self.stop_requested = True

    def check(self) -> None:
        if self.stop_requested:
            raise Stopped


@dataclass
class Outcome:
    status: RunStatus
    streams: list[StreamStats] = field(default_factory=list)
    error: RunError | None = None


def run_error(exc: TidemarkError, stream: str | None = None) -> RunError:
    message = exc.message
    if stream is not None and stream not in message:
        # Writer errors name the table; the user knows the stream.
        message = f"stream {stream}: {message}"
    return RunError(message=message, kind=exc.kind.value, stream=stream)


def open_source(settings: IngestSettings, connection_id: uuid.UUID) -> Source:
    token = settings.platform.internal_token
    if token is None:
        raise ConfigError("TIDEMARK_INTERNAL_TOKEN is not set, so the worker cannot fetch the connection")
    connector_type, config = fetch_connection_config(settings.connector_url, token.get_secret_value(),
                                                     connection_id)
    source_type = get_connector(connector_type)
    try:
        parsed = source_type.config_model.model_validate(config)
    except ValidationError as exc:
        # Field names and messages only: the input holds secrets.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        raise ConfigError(f"connection {connection_id} has an invalid {connector_type} config: {problems}") from exc
    REDACT.remember(secret_values(parsed))  # the log this worker ships never holds them
    with source_call(parsed, connector_type):
        return source_type(parsed)


def ingest(settings: IngestSettings, request: RunRequested, progress: Progress) -> Outcome:
    """Load every stream of the run, up to ``settings.stream_concurrency`` at once; a failing stream
    does not stop the others. A stop request (:class:`Stopped`) ends the run ``cancelled``: streams
    loaded before it stay committed, those being loaded are abandoned uncommitted, the rest are not
    started."""
    spec = request.pipeline
    try:
        source = open_source(settings, spec.connection_id)
    except TidemarkError as exc:
        log.warning("cannot open the source", extra=fields(error=exc.message))
        return Outcome(RunStatus.FAILED, error=run_error(exc))
    lake = Lakehouse(settings.lakehouse)
    owners: dict[str, str] = {}
    stats: list[StreamStats | None] = []
    todo: list[tuple[int, StreamSpec]] = []
    for s in spec.streams:
        identifier = table_identifier(spec.destination, s.name)
        first = owners.setdefault(identifier, s.name)
        if first != s.name:
            # The API refuses such pipelines; one saved before that rule must still not overwrite rows.
            error = ConfigError(f"streams {first!r} and {s.name!r} both map to table {identifier}; "
                                f"{s.name!r} was not loaded so it does not overwrite {first!r}")
            stats.append(_failed(s, identifier, 0, time.perf_counter(), run_error(error, s.name), []))
            continue
        todo.append((len(stats), s))
        stats.append(None)

    def one(s: StreamSpec) -> StreamStats | None:
        """The stream's stats; None when the run was stopped before it began."""
        if progress.stop_requested:
            return None
        started = time.perf_counter()
        try:
            return load_stream(lake, source, spec.destination, s, str(request.run_id), progress,
                               resync=s.name in request.resync, properties=table_properties(spec, s))
        except Stopped as exc:
            log.info("stopped; the stream was not committed", extra=fields(stream=s.name))
            stopped = RunError(message=STOPPED, kind="transient", stream=s.name)
            return _failed(s, table_identifier(spec.destination, s.name), exc.rows_read, started, stopped, [])

    workers = max(1, min(settings.stream_concurrency, len(todo))) if source.concurrent_streams else 1
    unstarted: list[int] = []
    try:
        if len(todo) > 1:
            _prepare(source, [s for _, s in todo])
        for index, result in _each(one, todo, workers):
            stats[index] = result
            if result is None:
                unstarted.append(index)
    finally:
        source.close()
        lake.close()
    stopped = [s.error for s in stats if s is not None and s.error is not None and s.error.message == STOPPED]
    if unstarted and not stopped:
        # Stopped between two streams: the next one is reported stopped, as one being loaded would be.
        index = min(unstarted)
        s = spec.streams[index]
        halted = RunError(message=STOPPED, kind="transient", stream=s.name)
        stats[index] = _failed(s, table_identifier(spec.destination, s.name), 0, time.perf_counter(), halted, [])
        stopped.append(halted)
    done = [s for s in stats if s is not None]
    if stopped:
        return Outcome(RunStatus.CANCELLED, done, stopped[0])
    return summarise(done)


def _prepare(source: Source, streams: list[StreamSpec]) -> None:
    """Let the source learn every stream's table at once (one catalog query, not one per stream)."""
    try:
        with source_call(source.config, source.type_name):
            source.prepare(streams)
    except TidemarkError as exc:
        # Each stream asks again on its own and fails with its own error if it must.
        log.warning("could not look up the streams at once; each stream looks itself up",
                    extra=fields(error=exc.message))


def _each(one: Callable[[StreamSpec], StreamStats | None], todo: list[tuple[int, StreamSpec]],
          workers: int) -> Iterator[tuple[int, StreamStats | None]]:
    """``one`` of every stream, ``workers`` at a time, as (index, result) in any order."""
    if workers == 1:
        for index, s in todo:
            yield index, one(s)
        return
    # Each thread logs as the run's thread does: with its run id (log context is a contextvar).
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tidemark-stream") as pool:
        futures = {pool.submit(context.copy().run, one, s): index for index, s in todo}
        for future in as_completed(futures):
            yield futures[future], future.result()


def table_properties(pipeline: PipelineSpec, stream: StreamSpec) -> dict[str, str]:
    """Where a table's rows come from, kept on the table (its name alone is sanitised)."""
    return {SOURCE_STREAM: stream.name, PIPELINE_ID: str(pipeline.pipeline_id), PIPELINE_NAME: pipeline.name,
            CONNECTION_ID: str(pipeline.connection_id)}


def load_stream(lake: Lakehouse, source: Source, destination: DestinationSpec, stream: StreamSpec,
                run_id: str, progress: Progress, resync: bool = False,
                properties: Mapping[str, str] | None = None) -> StreamStats:
    """Load one stream. ``resync`` forgets its state: read everything, replace the table, and commit
    the new cursor so the next run is incremental again."""
    mine = progress.begin(stream.name)
    try:
        with log_context(stream=stream.name, table=table_identifier(destination, stream.name)):
            return _load(lake, source, destination, stream, run_id, mine, resync, properties)
    finally:
        progress.end(mine)


def _load(lake: Lakehouse, source: Source, destination: DestinationSpec, stream: StreamSpec, run_id: str,
          mine: StreamProgress, resync: bool, properties: Mapping[str, str] | None) -> StreamStats:
    identifier = table_identifier(destination, stream.name)
    started = time.perf_counter()
    try:
        with source_call(source.config, source.type_name):
            schema = source.arrow_schema(stream)
        check_stream(stream, schema)
        state = None if resync else _state(stream, lake.read_state(destination, identifier))
        mode = SyncMode.FULL_REFRESH if resync else stream.sync_mode
        log.info("loading stream", extra=fields(mode=mode.value, resync=resync, cursor=_shown(state)))
        # A full refresh copies the table as it is, so the source's own key holds in it too.
        with source_call(source.config, source.type_name):
            key = stream.primary_key or (source.source_key(stream) if mode is SyncMode.FULL_REFRESH else [])
            # A key covering the source's own primary key occurs once in a read (one snapshot of the table).
            declared = source.declared_key(stream) if mode is SyncMode.INCREMENTAL else []
        unique = bool(declared) and set(declared) <= set(key)
        read = Counted(source, stream, source_batches(source.read(stream, state), source.config,
                                                      source.type_name))
        batches = mine.count(prefetched(iter(read)))
        request = WriteRequest(identifier, schema, mode, primary_key=key, run_id=run_id,
                               cursor_field=stream.cursor_field, partition=stream.partition,
                               properties=properties or {}, final_cursor=lambda: _final(source, stream),
                               unique_keys=unique, rows_read=read.checked)
        result = lake.write(destination, request, batches)
    except Stopped as exc:
        exc.rows_read = mine.rows_read
        raise
    except ReconciliationError as exc:
        log.error("row counts do not reconcile; the stream was not committed",
                  extra=fields(error=exc.message, **exc.detail))
        failed = _failed(stream, identifier, mine.rows_read, started, run_error(exc, stream.name),
                         _warnings(source, stream))
        counts = Reconciliation(rows_read=read.rows, rows_committed=exc.detail.get("rows_committed"),
                                source_rows=read.source_rows, table_rows=exc.detail.get("table_rows"), ok=False)
        return failed.model_copy(update={"rows_read": read.rows, "reconciliation": counts})
    except TidemarkError as exc:
        log.warning("stream failed", extra=fields(error=exc.message, kind=exc.kind.value))
        return _failed(stream, identifier, mine.rows_read, started, run_error(exc, stream.name),
                       _warnings(source, stream))
    except Exception:
        log.exception("stream failed unexpectedly")
        return _failed(stream, identifier, mine.rows_read, started,
                       RunError(message=INTERNAL_ERROR, kind="terminal", stream=stream.name),
                       _warnings(source, stream))
    duration = time.perf_counter() - started
    log.info("stream loaded", extra=fields(rows=result.rows_written, seconds=round(duration, 3),
                                           snapshot_id=result.snapshot_id))
    before = None if state is None else state.cursor_value
    after = result.cursor_value if result.cursor_value is not None else before  # no new rows: unchanged
    return StreamStats(
        stream=stream.name, table=identifier, status="succeeded", rows_read=read.rows,
        rows_written=result.rows_written, bytes_written=result.bytes_written,
        duration_seconds=duration, snapshot_id=result.snapshot_id, warnings=_warnings(source, stream),
        cursor_before=None if before is None else str(before), cursor_after=None if after is None else str(after),
        data_files=result.data_files, delete_files=result.delete_files, table_bytes=result.files_bytes,
        reconciliation=Reconciliation(rows_read=read.rows, rows_committed=result.rows_committed,
                                      source_rows=read.source_rows, table_rows=result.table_rows, ok=True),
    )


class Counted:
    """The source's batches, counted as they leave the source: the "rows read" every later step is
    reconciled against (prefetching, conforming, chunking and file writing all sit after it)."""

    def __init__(self, source: Source, stream: StreamSpec, batches: Iterator[pa.RecordBatch]) -> None:
        self.source, self.stream, self._batches = source, stream, batches
        self.rows = 0
        self.source_rows: int | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self._batches:
                self.rows += batch.num_rows
                yield batch
        finally:
            close = getattr(self._batches, "close", None)  # a reader stopped early releases its cursor now
            if close is not None:
                close()

    def checked(self) -> int:
        """The rows read, once the source has said how many its snapshot held (when it can) and they
        agree; the writer calls it before its commit."""
        with source_call(self.source.config, self.source.type_name):
            self.source_rows = self.source.snapshot_rows(self.stream)
        if self.source_rows is not None and self.source_rows != self.rows:
            raise ReconciliationError(
                f"stream {self.stream.name}: the source held {self.source_rows} rows in the read's snapshot "
                f"but {self.rows} were read; nothing was committed",
                source_rows=self.source_rows, rows_read=self.rows)
        return self.rows


def _shown(state: StreamState | None) -> str | None:
    """The cursor for the log: a file source's ledger is long, so its newest time stands for it."""
    if state is None:
        return None
    value = state.cursor_value
    if isinstance(value, dict) and "modified_at" in value:
        return f"ledger of files up to {value['modified_at']}"
    return str(value)


def _final(source: Source, stream: StreamSpec) -> Any:
    """The cursor value a source that tracks its own state wants committed; None lets the writer's stand."""
    with source_call(source.config, source.type_name):
        state = source.final_state(stream)
    return None if state is None else state.cursor_value


def _warnings(source: Source, stream: StreamSpec) -> list[StreamWarning]:
    found = source.warnings.take(stream.name)
    for w in found:
        log.warning("values converted", extra=fields(kind=w.kind, column=w.column, count=w.count, rule=w.message))
    return found


def _state(stream: StreamSpec, state: StreamState | None) -> StreamState | None:
    """The committed state, when it applies to this stream's mode and cursor."""
    if stream.sync_mode is SyncMode.FULL_REFRESH or state is None:
        return None
    if state.cursor_field == stream.cursor_field:
        return state
    if stream.sync_mode is SyncMode.INCREMENTAL:
        return None  # merging on the key makes reading everything again harmless
    raise ConfigError(
        f"stream {stream.name}: the cursor changed from {state.cursor_field!r} to {stream.cursor_field!r}; "
        "appending from the start would duplicate rows, so run a full refresh first"
    )


def _failed(stream: StreamSpec, identifier: str, rows_read: int, started: float,
            error: RunError, warnings: list[StreamWarning]) -> StreamStats:
    return StreamStats(stream=stream.name, table=identifier, status="failed", rows_read=rows_read,
                       duration_seconds=time.perf_counter() - started, error=error, warnings=warnings)


def summarise(stats: list[StreamStats]) -> Outcome:
    errors = [s.error for s in stats if s.error is not None]
    if not errors:
        return Outcome(RunStatus.SUCCEEDED, stats)
    if len(errors) < len(stats):
        return Outcome(RunStatus.PARTIALLY_SUCCEEDED, stats, errors[0])
    return Outcome(RunStatus.FAILED, stats, errors[0])
