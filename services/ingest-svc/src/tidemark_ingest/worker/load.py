"""The blocking part of a run: fetch the connection, read each stream, write it. Runs in a thread."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from tidemark.connectors import Source, StreamState, get_connector
from tidemark.connectors.boundary import secret_values, source_batches, source_call
from tidemark.connectors.client import fetch_connection_config
from tidemark.errors import ConfigError, TidemarkError
from tidemark.events import (
    DestinationSpec,
    PipelineSpec,
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
    """Raised in the loading thread when the worker was asked to stop (SIGTERM): the stream being
    written is abandoned before its commit, so its table stays as it was."""


@dataclass
class Progress:
    """What the loading thread is doing, read by the heartbeat (plain attributes: the GIL suffices)."""

    stream: str | None = None
    rows_read: int = 0
    stop_requested: bool = False

    def begin(self, stream: str) -> None:
        self.stream, self.rows_read = stream, 0

    def stop(self) -> None:
        """Ask the loading thread to stop at its next batch (the SIGTERM handler calls this)."""
        self.stop_requested = True

    def check(self) -> None:
        if self.stop_requested:
            raise Stopped

    def count(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            # Checked between batches, so the writer never sees the end of its input and never commits.
            self.check()
            self.rows_read += batch.num_rows
            yield batch


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
    """Load every stream of the run; a failing stream does not stop the others. A stop request
    (:class:`Stopped`) ends the run ``cancelled``: streams loaded before it stay committed, the one
    being loaded is abandoned uncommitted, the rest are not started."""
    spec = request.pipeline
    try:
        source = open_source(settings, spec.connection_id)
    except TidemarkError as exc:
        log.warning("cannot open the source", extra=fields(error=exc.message))
        return Outcome(RunStatus.FAILED, error=run_error(exc))
    lake = Lakehouse(settings.lakehouse)
    owners: dict[str, str] = {}
    stats = []
    try:
        for s in spec.streams:
            identifier = table_identifier(spec.destination, s.name)
            first = owners.setdefault(identifier, s.name)
            if first != s.name:
                # The API refuses such pipelines; one saved before that rule must still not overwrite rows.
                error = ConfigError(f"streams {first!r} and {s.name!r} both map to table {identifier}; "
                                    f"{s.name!r} was not loaded so it does not overwrite {first!r}")
                stats.append(_failed(s, identifier, progress, time.perf_counter(), run_error(error, s.name), []))
                continue
            try:
                progress.check()
                stats.append(load_stream(lake, source, spec.destination, s, str(request.run_id), progress,
                                         resync=s.name in request.resync, properties=table_properties(spec, s)))
            except Stopped:
                log.info("stopped; the stream was not committed", extra=fields(stream=s.name))
                stopped = RunError(message=STOPPED, kind="transient", stream=s.name)
                stats.append(_failed(s, identifier, progress, time.perf_counter(), stopped, []))
                return Outcome(RunStatus.CANCELLED, stats, stopped)
    finally:
        source.close()
    return summarise(stats)


def table_properties(pipeline: PipelineSpec, stream: StreamSpec) -> dict[str, str]:
    """Where a table's rows come from, kept on the table (its name alone is sanitised)."""
    return {SOURCE_STREAM: stream.name, PIPELINE_ID: str(pipeline.pipeline_id), PIPELINE_NAME: pipeline.name,
            CONNECTION_ID: str(pipeline.connection_id)}


def load_stream(lake: Lakehouse, source: Source, destination: DestinationSpec, stream: StreamSpec,
                run_id: str, progress: Progress, resync: bool = False,
                properties: Mapping[str, str] | None = None) -> StreamStats:
    """Load one stream. ``resync`` forgets its state: read everything, replace the table, and commit
    the new cursor so the next run is incremental again."""
    identifier = table_identifier(destination, stream.name)
    started = time.perf_counter()
    progress.begin(stream.name)
    with log_context(stream=stream.name, table=identifier):
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
            read = source_batches(source.read(stream, state), source.config, source.type_name)
            batches = progress.count(prefetched(read))
            request = WriteRequest(identifier, schema, mode, primary_key=key, run_id=run_id,
                                   cursor_field=stream.cursor_field, partition=stream.partition,
                                   properties=properties or {}, final_cursor=lambda: _final(source, stream))
            result = lake.write(destination, request, batches)
        except Stopped:
            raise
        except TidemarkError as exc:
            log.warning("stream failed", extra=fields(error=exc.message, kind=exc.kind.value))
            return _failed(stream, identifier, progress, started, run_error(exc, stream.name),
                           _warnings(source, stream))
        except Exception:
            log.exception("stream failed unexpectedly")
            return _failed(stream, identifier, progress, started,
                           RunError(message=INTERNAL_ERROR, kind="terminal", stream=stream.name),
                           _warnings(source, stream))
        duration = time.perf_counter() - started
        log.info("stream loaded", extra=fields(rows=result.rows_written, seconds=round(duration, 3),
                                               snapshot_id=result.snapshot_id))
        before = None if state is None else state.cursor_value
        after = result.cursor_value if result.cursor_value is not None else before  # no new rows: unchanged
        return StreamStats(
            stream=stream.name, table=identifier, status="succeeded", rows_read=progress.rows_read,
            rows_written=result.rows_written, bytes_written=result.bytes_written,
            duration_seconds=duration, snapshot_id=result.snapshot_id, warnings=_warnings(source, stream),
            cursor_before=None if before is None else str(before), cursor_after=None if after is None else str(after),
        )


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


def _failed(stream: StreamSpec, identifier: str, progress: Progress, started: float,
            error: RunError, warnings: list[StreamWarning]) -> StreamStats:
    return StreamStats(stream=stream.name, table=identifier, status="failed", rows_read=progress.rows_read,
                       duration_seconds=time.perf_counter() - started, error=error, warnings=warnings)


def summarise(stats: list[StreamStats]) -> Outcome:
    errors = [s.error for s in stats if s.error is not None]
    if not errors:
        return Outcome(RunStatus.SUCCEEDED, stats)
    if len(errors) < len(stats):
        return Outcome(RunStatus.PARTIALLY_SUCCEEDED, stats, errors[0])
    return Outcome(RunStatus.FAILED, stats, errors[0])
