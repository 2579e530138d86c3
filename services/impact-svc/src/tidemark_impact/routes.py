"""/v1/downstreams (the registry, with dbt and OpenLineage imports), /v1/lineage, /v1/impact,
/v1/alert-rules and /v1/alerts (history and acknowledgement)."""

from __future__ import annotations

import uuid
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Response, status
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.api.openapi import problem_responses
from tidemark.db import utcnow
from tidemark.errors import ConflictError, NotFoundError
from tidemark.ids import new_id
from tidemark_impact import lineage, logic
from tidemark_impact.deps import Runtime
from tidemark_impact.models import Alert, AlertRule, Downstream, Drift, DriftAction, PipelineView
from tidemark_impact.schemas import (
    AckIn,
    ActionOut,
    AlertOut,
    AlertRuleCreate,
    AlertRuleOut,
    DbtManifest,
    DownstreamCreate,
    DownstreamOut,
    ImpactOut,
    ImportOut,
    OpenLineageRunEvent,
    PipelineOut,
)

downstreams = APIRouter(prefix="/v1/downstreams", tags=["impact"])
lineage_router = APIRouter(prefix="/v1/lineage", tags=["impact"])
impact = APIRouter(prefix="/v1/impact", tags=["impact"])
rules = APIRouter(prefix="/v1/alert-rules", tags=["alerts"])
alerts = APIRouter(prefix="/v1/alerts", tags=["alerts"])


@downstreams.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(409))
async def register(body: DownstreamCreate, rt: Runtime) -> DownstreamOut:
    async with rt.transaction() as session:
        row = Downstream(id=new_id(), origin="api", **body.model_dump())
        session.add(row)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise ConflictError(f"a downstream named {body.name!r} already exists", field="name") from exc
        return DownstreamOut.model_validate(row)


async def _upsert(session: AsyncSession, found: list[DownstreamCreate], origin: str) -> list[DownstreamOut]:
    """Create or update by name: importing the same lineage twice changes nothing."""
    out = []
    for item in found:
        row = (await session.scalars(sa.select(Downstream).where(Downstream.name == item.name))).first()
        if row is None:
            row = Downstream(id=new_id(), origin=origin, created_at=utcnow(), **item.model_dump())
            session.add(row)
        else:
            for key, value in item.model_dump().items():
                setattr(row, key, value)
            row.origin = origin
        await session.flush()
        out.append(DownstreamOut.model_validate(row))
    return out


@lineage_router.post("/dbt", responses=problem_responses(422))
async def import_dbt(manifest: DbtManifest, rt: Runtime) -> ImportOut:
    """Import a dbt `manifest.json`: each model and exposure becomes a downstream of the sources it reads."""
    async with rt.transaction() as session:
        return ImportOut(imported=await _upsert(session, lineage.dbt_downstreams(manifest), "dbt"))


@downstreams.get("")
async def list_downstreams(
    rt: Runtime, table: Annotated[str | None, Query(description="Only those reading this table.")] = None
) -> list[DownstreamOut]:
    query = sa.select(Downstream).order_by(Downstream.name)
    if table:
        query = query.where(Downstream.table == table)
    async with rt.sessions() as session:
        return [DownstreamOut.model_validate(r) for r in (await session.scalars(query)).all()]


@downstreams.delete("/{downstream_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404))
async def unregister(downstream_id: uuid.UUID, rt: Runtime) -> Response:
    async with rt.transaction() as session:
        row = await session.get(Downstream, downstream_id)
        if row is None:
            raise NotFoundError(f"downstream {downstream_id} does not exist")
        await session.delete(row)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@lineage_router.post("", responses=problem_responses(422))
async def openlineage(event: OpenLineageRunEvent, rt: Runtime) -> ImportOut:
    """Take an OpenLineage run event: a job whose inputs are Tidemark tables becomes their downstream."""
    async with rt.transaction() as session:
        known = {p.table(s.name) for p in await logic.pipeline_refs(session) for s in p.streams}
        return ImportOut(imported=await _upsert(session, lineage.openlineage_downstreams(event, known), "openlineage"))


@impact.get("/pipelines")
async def pipelines(rt: Runtime) -> list[PipelineOut]:
    """impact-svc's projection of pipelines (from `pipeline.changed`), as impact analysis sees them."""
    async with rt.sessions() as session:
        rows = (await session.scalars(sa.select(PipelineView).where(PipelineView.deleted.is_(False))
                                      .order_by(PipelineView.name))).all()
    return [PipelineOut.model_validate(r) for r in rows]


@impact.get("/{drift_id}", responses=problem_responses(404))
async def impact_of(drift_id: uuid.UUID, rt: Runtime) -> ImpactOut:
    """What a drift affects, per change: pipelines, downstream pipelines, tables and registered downstreams,
    with hops, and whether it breaks each pipeline; and the automated actions it caused."""
    async with rt.sessions() as session:
        drift = await session.get(Drift, drift_id)
        if drift is None:
            raise NotFoundError(f"drift {drift_id} is not known to impact-svc (yet)", field="drift_id")
        changes = await logic.impact_of(session, drift)
        actions = (await session.scalars(sa.select(DriftAction).where(DriftAction.drift_id == drift_id)
                                         .order_by(DriftAction.created_at))).all()
    return ImpactOut(drift_id=drift.id, connection_id=drift.connection_id, detected_at=drift.detected_at,
                     breaking=any(h.breaking for c in changes for h in c.pipelines), changes=changes,
                     actions=[ActionOut.model_validate(a) for a in actions])


@rules.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(409))
async def create_rule(body: AlertRuleCreate, rt: Runtime) -> AlertRuleOut:
    async with rt.transaction() as session:
        row = AlertRule(id=new_id(), created_at=utcnow(), **(body.model_dump() | {"url": str(body.url)}))
        session.add(row)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise ConflictError(f"an alert rule named {body.name!r} already exists", field="name") from exc
        return AlertRuleOut.model_validate(row)


@rules.get("")
async def list_rules(rt: Runtime) -> list[AlertRuleOut]:
    async with rt.sessions() as session:
        return [AlertRuleOut.model_validate(r)
                for r in (await session.scalars(sa.select(AlertRule).order_by(AlertRule.name))).all()]


@rules.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404))
async def delete_rule(rule_id: uuid.UUID, rt: Runtime) -> Response:
    async with rt.transaction() as session:
        row = await session.get(AlertRule, rule_id)
        if row is None:
            raise NotFoundError(f"alert rule {rule_id} does not exist")
        await session.delete(row)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@alerts.get("")
async def list_alerts(
    rt: Runtime,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
    drift_id: Annotated[uuid.UUID | None, Query(description="Only this drift's alerts.")] = None,
    acknowledged: Annotated[bool | None, Query(description="Only acknowledged (true) or open (false) ones.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlertOut]:
    query = sa.select(Alert).order_by(Alert.created_at.desc()).limit(limit)
    if subject_id:
        query = query.where(Alert.subject_id == subject_id)
    if drift_id is not None:
        query = query.where(Alert.drift_id == drift_id)
    if acknowledged is not None:
        query = query.where(Alert.acknowledged_at.is_not(None) if acknowledged else Alert.acknowledged_at.is_(None))
    async with rt.sessions() as session:
        return [AlertOut.model_validate(r) for r in (await session.scalars(query)).all()]


@alerts.post("/{alert_id}/ack", responses=problem_responses(404))
async def acknowledge(alert_id: uuid.UUID, rt: Runtime, body: AckIn | None = None) -> AlertOut:
    async with rt.transaction() as session:
        row = await session.get(Alert, alert_id)
        if row is None:
            raise NotFoundError(f"alert {alert_id} does not exist")
        if row.acknowledged_at is None:
            row.acknowledged_at = utcnow()
            row.acknowledged_by = body.by if body is not None else None
        return AlertOut.model_validate(row)
