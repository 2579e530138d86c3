"""Alert rules, as plain functions."""

from __future__ import annotations

from tidemark.events import AlertSent, RunFinished, RunStatus
from tidemark.ids import new_id
from tidemark_impact.deps import ImpactContext
from tidemark_impact.models import Alert


async def on_run_finished(ctx: ImpactContext, event: RunFinished) -> None:
    """A failed or partial run becomes an alert in the history (delivery channels plug in here)."""
    if event.status not in (RunStatus.FAILED, RunStatus.PARTIALLY_SUCCEEDED):
        return
    reason = event.error.message if event.error else "one or more streams failed"
    alert = Alert(
        id=new_id(),
        rule="run_failed",
        severity="critical" if event.status is RunStatus.FAILED else "warning",
        title=f"Run {event.run_id} {event.status.value}: {reason}",
        subject_id=str(event.run_id),
        channel="history",
    )
    ctx.session.add(alert)
    await ctx.emit(
        AlertSent(alert_id=alert.id, rule=alert.rule, channel=alert.channel, title=alert.title,
                  severity="critical" if event.status is RunStatus.FAILED else "warning",
                  subject_id=alert.subject_id),
    )
