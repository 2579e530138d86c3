"""Keeping the set of watched connections in step with connector-svc's events."""

from __future__ import annotations

from tidemark.events import ConnectionChanged, DriftActionRecorded, RunRequested
from tidemark_schema.deps import SchemaContext
from tidemark_schema.models import DriftEvent, WatchedConnection


async def on_connection_changed(ctx: SchemaContext, event: ConnectionChanged) -> None:
    session, envelope = ctx.session, ctx.envelope
    watched = await session.get(WatchedConnection, event.connection_id)
    if watched is None:
        watched = WatchedConnection(connection_id=event.connection_id)
        session.add(watched)
    elif watched.updated_at > envelope.occurred_at:
        return  # an older event delivered late
    watched.name = event.name
    watched.connector_type = event.connector_type
    watched.active = event.change != "deleted"
    watched.updated_at = envelope.occurred_at
    # A new or changed connection is polled at once: its first snapshot, or what its new settings show.
    watched.next_poll_at = None
    ctx.runtime.state.wakeup.set()


async def on_drift_action(ctx: SchemaContext, event: DriftActionRecorded) -> None:
    """An automated response to one of our drift events: kept with it, once."""
    drift = await ctx.session.get(DriftEvent, event.drift_id)
    if drift is None or any(a.get("id") == str(event.action_id) for a in drift.actions):
        return
    drift.actions = [*drift.actions, {"id": str(event.action_id), "pipeline_id": str(event.pipeline_id),
                                      "action": event.action, "change_kind": event.change_kind,
                                      "stream": event.stream, "column": event.column, "detail": event.detail,
                                      "at": event.at.isoformat()}]


async def on_run_requested(ctx: SchemaContext, event: RunRequested) -> None:
    """A run is about to read its source: poll that connection now (a fingerprint when nothing
    changed), so a change the run will meet is a drift event before or as the worker reads."""
    watched = await ctx.session.get(WatchedConnection, event.pipeline.connection_id)
    if watched is not None and watched.active:
        watched.next_poll_at = None
        ctx.runtime.state.wakeup.set()
