"""Event handlers: the pipelines projection, drift analysis with its policies and alerts, run alerts."""

from __future__ import annotations

import uuid
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.events import (
    AlertSent,
    DestinationSpec,
    PipelineChanged,
    RunFinished,
    RunStatus,
    SchemaChange,
    SchemaDriftDetected,
    StreamSpec,
)
from tidemark.ids import new_id
from tidemark_impact import policies
from tidemark_impact.deps import ImpactContext
from tidemark_impact.impact import ChangeImpact, DownstreamRef, PipelineRef, analyse
from tidemark_impact.models import Alert, AlertRule, Downstream, Drift, PipelineView

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


async def on_run_finished(ctx: ImpactContext, event: RunFinished) -> None:
    """A failed or partial run becomes an alert in the history."""
    if event.status not in (RunStatus.FAILED, RunStatus.PARTIALLY_SUCCEEDED):
        return
    reason = event.error.message if event.error else "one or more streams failed"
    severity: Severity = "critical" if event.status is RunStatus.FAILED else "warning"
    alert = Alert(id=new_id(), rule="run_failed", severity=severity,
                  title=f"Run {event.run_id} {event.status.value}: {reason}", subject_id=str(event.run_id),
                  channel="history", dedup_key=f"run:{event.run_id}", delivery="none", attempts=0)
    ctx.session.add(alert)
    await ctx.emit(AlertSent(alert_id=alert.id, rule=alert.rule, channel=alert.channel, title=alert.title,
                             severity=severity, subject_id=alert.subject_id))


async def on_pipeline_changed(ctx: ImpactContext, event: PipelineChanged) -> None:
    row = await ctx.session.get(PipelineView, event.pipeline_id)
    if row is None:
        row = PipelineView(pipeline_id=event.pipeline_id)
        ctx.session.add(row)
    elif row.updated_at > ctx.envelope.occurred_at:
        return  # an older event delivered late
    spec = event.pipeline
    row.name = spec.name
    row.connection_id = spec.connection_id
    row.status = event.status
    row.streams = [s.model_dump(mode="json") for s in spec.streams]
    row.destination = spec.destination.model_dump(mode="json")
    row.upstreams = [str(u) for u in event.upstreams]
    row.drift_policy = dict(event.drift_policy)
    row.deleted = event.change == "deleted"
    row.updated_at = ctx.envelope.occurred_at


async def pipeline_refs(session: AsyncSession) -> list[PipelineRef]:
    rows = (await session.scalars(sa.select(PipelineView).where(PipelineView.deleted.is_(False)))).all()
    return [PipelineRef(id=r.pipeline_id, name=r.name, connection_id=r.connection_id,
                        streams=[StreamSpec.model_validate(s) for s in r.streams],
                        destination=DestinationSpec.model_validate(r.destination),
                        upstreams=[uuid.UUID(u) for u in r.upstreams], drift_policy=dict(r.drift_policy))
            for r in rows]


async def downstream_refs(session: AsyncSession) -> list[DownstreamRef]:
    rows = (await session.scalars(sa.select(Downstream))).all()
    return [DownstreamRef(id=r.id, name=r.name, kind=r.kind, table=r.table, columns=r.columns) for r in rows]


async def impact_of(session: AsyncSession, drift: Drift) -> list[ChangeImpact]:
    changes = [SchemaChange.model_validate(c) for c in drift.changes]
    return analyse(changes, drift.connection_id, await pipeline_refs(session), await downstream_refs(session))


async def on_schema_drift(ctx: ImpactContext, event: SchemaDriftDetected) -> None:
    """Record the drift, carry out each affected pipeline's policy, and raise one alert per matching
    rule (deduplicated by drift: a change seen again, or by another replica, alerts nobody twice)."""
    session = ctx.session
    drift_id = event.drift_id or event.snapshot_id
    if await session.get(Drift, drift_id) is not None:
        return
    drift = Drift(id=drift_id, connection_id=event.connection_id, connection_name=event.connection_name,
                  event_id=ctx.envelope.id, detected_at=event.detected_at or ctx.envelope.occurred_at,
                  changes=[c.model_dump(mode="json") for c in event.changes])
    session.add(drift)
    pipelines = await pipeline_refs(session)
    impacts = analyse(list(event.changes), event.connection_id, pipelines, await downstream_refs(session))
    await policies.carry_out(ctx, drift, impacts, {p.id: p for p in pipelines})
    await raise_alerts(ctx, drift, impacts)


def severity_of(drift: Drift, impacts: list[ChangeImpact]) -> Severity:
    hits = [h for i in impacts for h in i.pipelines]
    if any(h.breaking for h in hits):
        return "critical"
    if hits or any(c.get("breaking") for c in drift.changes):
        return "warning"
    return "info"


def title_of(drift: Drift, impacts: list[ChangeImpact], severity: Severity) -> str:
    kinds = sorted({i.change.kind for i in impacts})
    pipelines = sorted({h.name for i in impacts for h in i.pipelines})
    where = drift.connection_name or str(drift.connection_id)
    affected = f"; pipelines: {', '.join(pipelines)}" if pipelines else "; no pipeline affected"
    return f"[{severity}] schema drift on {where}: {len(impacts)} change(s) ({', '.join(kinds)}){affected}"


async def raise_alerts(ctx: ImpactContext, drift: Drift, impacts: list[ChangeImpact]) -> None:
    session = ctx.session
    severity = severity_of(drift, impacts)
    title = title_of(drift, impacts, severity)
    affected = {h.pipeline_id for i in impacts for h in i.pipelines}
    detail = {"drift_id": str(drift.id), "connection_id": str(drift.connection_id), "severity": severity,
              "changes": drift.changes, "impact": [i.model_dump(mode="json") for i in impacts]}
    rules = (await session.scalars(sa.select(AlertRule).where(AlertRule.enabled.is_(True)))).all()
    matched = [r for r in rules
               if (r.connection_id is None or r.connection_id == drift.connection_id)
               and (r.pipeline_id is None or r.pipeline_id in affected)
               and SEVERITIES.index(severity) >= SEVERITIES.index(r.min_severity)]
    for rule in matched:
        session.add(Alert(id=new_id(), rule=rule.name, severity=severity, title=title,
                          subject_id=str(drift.connection_id), channel=rule.channel,
                          dedup_key=f"drift:{drift.id}:{rule.id}", rule_id=rule.id, drift_id=drift.id, detail=detail,
                          delivery="pending", attempts=0))
    if not matched:
        session.add(Alert(id=new_id(), rule="schema_drift", severity=severity, title=title,
                          subject_id=str(drift.connection_id), channel="history", dedup_key=f"drift:{drift.id}",
                          drift_id=drift.id, detail=detail, delivery="none", attempts=0))
    ctx.runtime.state.wakeup.set()
