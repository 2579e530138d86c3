"""Automated responses to drift, by each affected pipeline's ``drift_policy``, per change kind.

impact-svc decides and records; what another service owns it asks for by event (a pause is
``pipeline.pause_requested``, which orchestrator-svc carries out). Every action is a
:class:`DriftAction` row tied to the drift that caused it, shown with the drift's impact."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tidemark.db import utcnow
from tidemark.events import (
    DriftActionRecorded,
    PipelineDriftActionRequested,
    PipelinePauseRequested,
    SchemaChange,
)
from tidemark.ids import new_id
from tidemark_impact.deps import ImpactContext
from tidemark_impact.models import Drift, DriftAction

if TYPE_CHECKING:
    from tidemark_impact.impact import ChangeImpact, PipelineRef

# The policy key each change kind looks up; a renamed column falls back to the rule for a removed one.
POLICY_KEYS: dict[str, tuple[str, ...]] = {
    "column_added": ("column_added",),
    "column_removed": ("column_removed",),
    "column_renamed": ("column_renamed", "column_removed"),
    "type_changed": ("type_changed",),
    "nullability_changed": ("nullability_changed",),
    "primary_key_changed": ("primary_key_changed",),
    "default_changed": ("default_changed",),
    "stream_added": ("table_added",),
    "stream_removed": ("table_removed",),
}
ACTIONS = ("propagate", "ignore", "pause", "fail", "add_stream", "create_pipeline")


def policy_for(pipeline: PipelineRef, change: SchemaChange) -> str | None:
    for key in POLICY_KEYS.get(change.kind, ()):
        if key in pipeline.drift_policy:
            return pipeline.drift_policy[key]
    return None


async def carry_out(ctx: ImpactContext, drift: Drift, impacts: list[ChangeImpact],
                    pipelines: dict[uuid.UUID, PipelineRef]) -> None:
    paused: set[uuid.UUID] = set()
    for impact in impacts:
        change = impact.change
        for hit in impact.pipelines:
            pipeline = pipelines.get(hit.pipeline_id)
            if hit.hop != 1 or pipeline is None:
                continue  # policies answer changes of a pipeline's own source
            action = policy_for(pipeline, change)
            if action is None:
                continue
            detail = await _act(ctx, drift, pipeline, change, action, paused)
            row = DriftAction(id=new_id(), drift_id=drift.id, pipeline_id=pipeline.id, change_kind=change.kind,
                              stream=change.stream, column=change.column, action=action, detail=detail,
                              created_at=utcnow())
            ctx.session.add(row)
            await ctx.emit(DriftActionRecorded(
                action_id=row.id, drift_id=drift.id, connection_id=drift.connection_id, pipeline_id=pipeline.id,
                action=action, change_kind=change.kind, stream=change.stream, column=change.column, detail=detail,
                at=row.created_at))


async def _act(ctx: ImpactContext, drift: Drift, pipeline: PipelineRef, change: SchemaChange, action: str,
               paused: set[uuid.UUID]) -> str:
    what = f"{change.kind} on {change.stream}" + (f".{change.column}" if change.column else "")
    if action == "pause":
        if pipeline.id not in paused:
            paused.add(pipeline.id)
            await ctx.emit(PipelinePauseRequested(pipeline_id=pipeline.id, reason=f"schema drift: {what}",
                                                  cause_event_id=drift.event_id))
            return f"pause requested of orchestrator-svc ({what}); resume the pipeline to go on"
        return f"pause already requested for this drift ({what})"
    if action == "propagate":
        return (f"propagate ({what}): the next run evolves the Iceberg table (adds the column, widens the "
                "type) and keeps loading")
    request = PipelineDriftActionRequested(pipeline_id=pipeline.id, action="fail", reason=f"schema drift: {what}",
                                           stream=change.stream, cause_event_id=drift.event_id, drift_id=drift.id)
    if action == "fail":
        await ctx.emit(request)
        return f"the pipeline's next run fails ({what}); fix the source or the pipeline, then run again"
    if action == "ignore":
        if change.kind != "column_added":
            return f"ignored ({what})"
        known = [c for c in change.stream_columns or [] if c != change.column]
        await ctx.emit(request.model_copy(update={"action": "ignore", "columns": known or None}))
        return f"ignored ({what}): the stream keeps loading the columns it had"
    if action in ("add_stream", "create_pipeline") and change.kind == "stream_added":
        await ctx.emit(request.model_copy(update={"action": action}))
        return (f"{change.stream} added to the pipeline" if action == "add_stream"
                else f"a new pipeline asked for, loading {change.stream} with this pipeline's settings")
    return f"{action} does not apply to {change.kind}: nothing done"
