"""A maintenance run (trigger ``maintenance``): compact, expire and clean the pipeline's tables instead of
loading them. Blocking; runs in the worker's thread like a load. One ``StreamStats`` per table, with
what maintenance did in ``maintenance`` (files before and after, bytes rewritten, snapshots expired,
files deleted), so jobs-svc shows it like any run's stats."""

from __future__ import annotations

import datetime as dt
import logging
import time

from tidemark.errors import NotFoundError, TidemarkError
from tidemark.events import RunRequested, RunStatus, StreamStats
from tidemark.events.contracts import MaintenanceRequest, MaintenanceStats, RunError
from tidemark.lakehouse import Lakehouse, table_identifier
from tidemark.lakehouse.maintenance.orphans import DEFAULT_CLEAN, CleanOptions, clean_parquet_staging
from tidemark.lakehouse.maintenance.run import maintain_table, stats
from tidemark.logs import fields
from tidemark_ingest.settings import IngestSettings
from tidemark_ingest.worker.load import STOPPED, Outcome, Progress, Stopped, run_error, summarise

log = logging.getLogger(__name__)


def maintain(settings: IngestSettings, request: RunRequested, progress: Progress) -> Outcome:
    spec, wanted = request.pipeline, request.maintenance or MaintenanceRequest()
    # A run of this pipeline may take up to its timeout: its files are unreferenced until it commits.
    longest = max(DEFAULT_CLEAN.longest_run, dt.timedelta(seconds=request.timeout_seconds or 0))
    lake = Lakehouse(settings.lakehouse)
    results: list[StreamStats] = []
    try:
        for stream in spec.streams:
            identifier = table_identifier(spec.destination, stream.name)
            if wanted.table is not None and identifier != wanted.table:
                continue
            started = time.perf_counter()
            try:
                progress.check()
                progress.begin(stream.name)
                done = _one(lake, settings, request, identifier, wanted, longest)
                results.append(StreamStats(stream=stream.name, table=identifier, status="succeeded",
                                           duration_seconds=time.perf_counter() - started, maintenance=done))
            except Stopped:
                stopped = RunError(message=STOPPED, kind="transient", stream=stream.name)
                results.append(StreamStats(stream=stream.name, table=identifier, status="failed", error=stopped,
                                           duration_seconds=time.perf_counter() - started))
                return Outcome(RunStatus.CANCELLED, results, stopped)
            except TidemarkError as exc:
                log.warning("maintenance failed", extra=fields(table=identifier, error=exc.message))
                results.append(StreamStats(stream=stream.name, table=identifier, status="failed",
                                           duration_seconds=time.perf_counter() - started,
                                           error=run_error(exc, stream.name)))
    finally:
        lake.close()
    return summarise(results)


def _one(lake: Lakehouse, settings: IngestSettings, request: RunRequested, identifier: str,
         wanted: MaintenanceRequest, longest: dt.timedelta) -> MaintenanceStats:
    policy = request.pipeline.maintenance
    if request.pipeline.destination.kind == "parquet":
        # Plain Parquet has no snapshots to compact or expire: only killed runs' staging directories.
        if wanted.action not in ("clean", "all"):
            return MaintenanceStats(dry_run=wanted.dry_run)
        options = CleanOptions(dt.timedelta(days=policy.orphan_days), longest)
        cleaned = clean_parquet_staging(settings.lakehouse, identifier, options, wanted.dry_run)
        return MaintenanceStats(dry_run=wanted.dry_run, actions=["clean"], files_deleted=len(cleaned.files),
                                bytes_reclaimed=cleaned.bytes)
    try:
        report = maintain_table(lake.catalog, settings.lakehouse, identifier, wanted.action, policy,
                                wanted.dry_run, longest)
    except NotFoundError:
        log.info("no table yet; nothing to maintain", extra=fields(table=identifier))
        return MaintenanceStats(dry_run=wanted.dry_run)
    log.info("table maintained", extra=fields(table=identifier, **stats(report).model_dump(exclude={"actions"})))
    return stats(report)
