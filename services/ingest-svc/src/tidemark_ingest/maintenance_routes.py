"""/v1/tables/{table}/health and /v1/tables/{table}/maintenance: a table's health, and maintenance on demand.

Maintenance here runs synchronously in the request (in a worker thread) on one table, outside the run
lifecycle: what ``tidemark tables compact|expire|clean`` calls, and the way to get a dry run at once.
Expiry and orphan cleanup are safe beside a running ingestion (they never touch what the current state
or a running write needs). Compaction is refused (409) while a run this service holds writes the table:
had it committed first, that run's merge would fail validation and be retried; the pipeline's
maintenance endpoint queues behind the run instead (see docs/maintenance.md).
"""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tidemark.api.openapi import problem_responses
from tidemark.errors import ConflictError
from tidemark.events import ACTIVE, RunRequested
from tidemark.lakehouse.destination import table_identifier
from tidemark.lakehouse.maintenance.health import TableHealth, table_health
from tidemark.lakehouse.maintenance.run import Action, MaintenancePolicy, MaintenanceReport, maintain_table
from tidemark_ingest.deps import IngestRuntime, Runtime
from tidemark_ingest.metrics import MAINTENANCE, MAINTENANCE_RECLAIMED, MAINTENANCE_REWRITTEN
from tidemark_ingest.models import WorkerRun
from tidemark_ingest.settings import IngestSettings
from tidemark_ingest.table_routes import TableId, _with_catalog

router = APIRouter(prefix="/v1/tables", tags=["tables"])


class Policy(MaintenancePolicy):
    model_config = ConfigDict(extra="forbid")


class MaintenanceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action = Field(default="all", description="`compact`, `expire`, `clean`, or `all` (in that order).")
    dry_run: bool = Field(default=False, description="Only report what would change.")
    policy: Policy = Field(default_factory=Policy,
                                      description="Retention and compaction settings; the defaults when left out.")


@router.get("/{table}/health", responses=problem_responses(404, 503))
async def get_table_health(table: TableId, rt: Runtime) -> TableHealth:
    """Data files, delete files, average file size, snapshots kept and the last compaction."""
    return await _with_catalog(rt, table_health, table)


def _writes(spec: dict[str, object], table: str) -> bool:
    try:
        request = RunRequested.model_validate(spec)
    except ValidationError:
        return True  # a run we cannot read: assume the worst
    pipeline = request.pipeline
    return any(table_identifier(pipeline.destination, s.name) == table for s in pipeline.streams)


async def _refuse_while_written(rt: IngestRuntime, table: str) -> None:
    async with rt.sessions() as session:
        runs = (await session.execute(sa.select(WorkerRun.run_id, WorkerRun.spec)
                                      .where(WorkerRun.status.in_([s.value for s in ACTIVE])))).all()
    writing = [str(run_id) for run_id, spec in runs if _writes(spec, table)]
    if writing:
        raise ConflictError(
            f"table {table}: run {writing[0]} writes it now; compact after it ends, or queue maintenance with "
            "POST /v1/pipelines/{id}/maintenance, which waits for the pipeline's runs")


@router.post("/{table}/maintenance", responses=problem_responses(404, 409, 422, 503))
async def post_table_maintenance(table: TableId, rt: Runtime,
                                 body: MaintenanceBody | None = None) -> MaintenanceReport:
    """Compact, expire snapshots and/or delete orphan files of one table now; `dry_run` only lists them."""
    request = body or MaintenanceBody()
    settings: IngestSettings = rt.settings
    if request.action in ("compact", "all") and not request.dry_run:
        await _refuse_while_written(rt, table)
    try:
        report = await _with_catalog(rt, lambda catalog: maintain_table(
            catalog, settings.lakehouse, table, request.action, request.policy, request.dry_run))
    except Exception:
        MAINTENANCE.labels("api", "failed").inc()
        raise
    MAINTENANCE.labels("api", "succeeded").inc()
    if not report.dry_run:
        MAINTENANCE_RECLAIMED.inc(report.bytes_reclaimed)
        MAINTENANCE_REWRITTEN.inc(report.bytes_rewritten)
    return report
