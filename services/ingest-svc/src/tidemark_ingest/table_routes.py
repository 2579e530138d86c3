"""/v1/tables: the Iceberg tables in the lakehouse catalog, their schema, snapshots, state and rows.

Read-only. pyiceberg blocks, so every catalog call runs in a thread; each request opens
the catalog from ingest's own lakehouse settings and closes it again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

import requests
from fastapi import APIRouter, Path, Query
from pyiceberg.exceptions import ForbiddenError, ServerError, ServiceUnavailableError, UnauthorizedError
from sqlalchemy.exc import OperationalError

from tidemark.api.openapi import problem_responses
from tidemark.errors import ConfigError, TransientError
from tidemark.lakehouse import close_catalog, open_catalog
from tidemark.lakehouse.tables import (
    TableDetail,
    TablePreview,
    TableSource,
    TableSummary,
    describe_table,
    list_tables,
    preview_table,
)
from tidemark_ingest import repository
from tidemark_ingest.deps import IngestRuntime, Runtime
from tidemark_ingest.settings import IngestSettings

T = TypeVar("T")
S = TypeVar("S", bound=TableSummary)

DESCRIPTION = (
    "Tables of the configured Iceberg catalog (SQL or REST). Tables of `parquet` destinations are "
    "not in a catalog and are not listed."
)


TableId = Annotated[str, Path(
    # Every segment holds something besides whitespace: catalogs refuse blank names.
    pattern=r"^[^.]*[^.\s][^.]*(\.[^.]*[^.\s][^.]*)+$", max_length=1024,
    description="`namespace.table`; in a nested namespace `a.b.table` (the last dot separates the table).",
)]
router = APIRouter(prefix="/v1/tables", tags=["tables"])


async def _with_catalog(rt: IngestRuntime, read: Callable[..., T], *args: object) -> T:
    settings: IngestSettings = rt.settings

    def run() -> T:
        try:
            catalog = open_catalog(settings.lakehouse)
        except ConfigError as exc:
            # Ingest's own settings are wrong: nothing the caller can fix, unavailable until an operator does.
            raise TransientError(exc.message) from exc
        try:
            return read(catalog, *args)
        except (UnauthorizedError, ForbiddenError) as exc:
            # The server's setup, not the caller's request: unavailable until an operator fixes it.
            raise TransientError("the lakehouse catalog refused ingest-svc's credentials") from exc
        except (OperationalError, ServerError, ServiceUnavailableError, requests.RequestException, OSError) as exc:
            raise TransientError(f"the lakehouse catalog cannot be read right now: {type(exc).__name__}") from exc
        finally:
            close_catalog(catalog)

    return await asyncio.to_thread(run)


async def _with_sources(rt: IngestRuntime, tables: Sequence[S]) -> list[S]:
    """Tables without Tidemark's source properties (written by older versions) get their source
    from the run that last wrote them, when this service launched it."""
    missing = {t.identifier: _run_uuid(t.last_run_id) for t in tables if t.source is None}
    wanted = [r for r in missing.values() if r is not None]
    if not wanted:
        return list(tables)
    async with rt.sessions() as session:
        runs = await repository.worker_runs_by_id(session, wanted)
    out: list[S] = []
    for table in tables:
        run = runs.get(missing.get(table.identifier) or uuid.UUID(int=0))
        if run is None:
            out.append(table)
            continue
        pipeline = run.spec.get("pipeline", {})
        stream = next((s.get("stream") for s in run.stats or [] if s.get("table") == table.identifier), None)
        source = TableSource(pipeline_id=run.pipeline_id, pipeline_name=pipeline.get("name"),
                             connection_id=pipeline.get("connection_id"), stream=stream)
        out.append(table.model_copy(update={"source": source}))
    return out


def _run_uuid(raw: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None


@router.get("", description=DESCRIPTION, responses=problem_responses(503))
async def get_tables(rt: Runtime) -> list[TableSummary]:
    """Every table in the lakehouse catalog, by identifier."""
    return await _with_sources(rt, await _with_catalog(rt, list_tables))


@router.get("/{table}", responses=problem_responses(503))
async def get_table(table: TableId, rt: Runtime) -> TableDetail:
    """Schema, row count, snapshots (newest first), the stored cursor and where the rows come from."""
    detail = await _with_catalog(rt, describe_table, table)
    return (await _with_sources(rt, [detail]))[0]


@router.get("/{table}/preview", responses=problem_responses(503))
async def get_table_preview(
    table: TableId, rt: Runtime, limit: Annotated[int, Query(ge=1, le=1000, description="Rows to return.")] = 20,
) -> TablePreview:
    """The first `limit` rows of the current snapshot, as JSON objects."""
    return await _with_catalog(rt, preview_table, table, limit)
