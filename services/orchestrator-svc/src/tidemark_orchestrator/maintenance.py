"""Automatic table maintenance: after an ingestion run ends, queue a maintenance run when one is due.

Due when the pipeline's last full maintenance (expire, clean, compact) is older than
``maintenance_interval_hours`` (the interval starts with the pipeline's first good run, so a new
pipeline is not maintained right after it), or when the run left a table with more delete files than
the threshold, or more data files than the threshold that are small on average (then: compaction
only). Only an idle, active pipeline gets one: admission would hold it behind a waiting run anyway,
and a maintenance run never cancels or delays ingestion beyond its own length. Maintenance runs
themselves never trigger maintenance or dependency runs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.events import RunFinished, RunStatus, StreamStats
from tidemark.events.contracts import MaintenanceAction, MaintenancePolicy, MaintenanceRequest
from tidemark.logs import fields
from tidemark_orchestrator import admission, repository
from tidemark_orchestrator.deps import OrchestratorRuntime
from tidemark_orchestrator.models import Pipeline, Run
from tidemark_orchestrator.settings import OrchestratorSettings

log = logging.getLogger(__name__)

ENDED_WELL = {RunStatus.SUCCEEDED, RunStatus.PARTIALLY_SUCCEEDED}
# Compaction's "small file" (tidemark.lakehouse.maintenance.compact.CompactOptions.small_file_bytes).
SMALL_FILE_BYTES = 32 * 1024 * 1024


def due(pipeline: Pipeline, event: RunFinished, settings: OrchestratorSettings, now: datetime
        ) -> MaintenanceAction | None:
    """What maintenance the ending ``event`` of an ingestion run calls for, if any (it may start the interval)."""
    policy = MaintenancePolicy.model_validate(pipeline.maintenance or {})
    if not policy.enabled or event.status not in ENDED_WELL:
        return None
    if pipeline.maintained_at is None:
        # The interval starts with the first good run: a new pipeline's tables have nothing to expire yet.
        pipeline.maintained_at = now
    elif now - pipeline.maintained_at >= timedelta(hours=settings.maintenance_interval_hours):
        return "all"
    deletes = settings.maintenance_delete_files_threshold
    crowded = any((policy.compact_small_files and _many_small_files(s, settings))
                  or (policy.compact_delete_files and (s.delete_files or 0) > deletes) for s in event.streams)
    return "compact" if crowded else None


def _many_small_files(stats: StreamStats, settings: OrchestratorSettings) -> bool:
    """More data files than the threshold, and small on average: a big table of big files is left alone,
    since compaction would find nothing to rewrite."""
    files = stats.data_files or 0
    if files <= settings.maintenance_data_files_threshold:
        return False
    return stats.table_bytes is None or stats.table_bytes / files < SMALL_FILE_BYTES


async def after_run(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline, run: Run,
                    event: RunFinished, now: datetime) -> Run | None:
    """Record a maintenance run's ending, or queue one after an ingestion run; the queued run, if any."""
    if run.maintenance is not None:
        wanted = MaintenanceRequest.model_validate(run.maintenance)
        if event.status is RunStatus.SUCCEEDED and wanted.action == "all" and wanted.table is None \
                and not wanted.dry_run:
            pipeline.maintained_at = now
        return None
    settings: OrchestratorSettings = runtime.settings
    action = due(pipeline, event, settings, now)
    if action is None or pipeline.status != "active" or await repository.active_runs(session, pipeline.id):
        return None
    queued = await admission.enqueue(runtime, session, pipeline, "maintenance", now,
                                     maintenance=MaintenanceRequest(action=action))
    log.info("maintenance run queued", extra=fields(pipeline=pipeline.name, action=action, run_id=str(queued.id)))
    return queued
