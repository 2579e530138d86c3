"""Alert rules, as plain functions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.events import AlertSent, Envelope, RunFinished, RunStatus
from tidemark.ids import new_id
from tidemark.service import ServiceRuntime
from tidemark_impact.models import Alert

RunFinishedHandler = Callable[[AsyncSession, RunFinished, Envelope], Awaitable[None]]


def on_run_finished(runtime: ServiceRuntime) -> RunFinishedHandler:
    """A failed or partial run becomes an alert in the history (delivery channels plug in here)."""

    async def handle(session: AsyncSession, event: RunFinished, envelope: Envelope) -> None:
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
        session.add(alert)
        await runtime.emit(
            session,
            AlertSent(alert_id=alert.id, rule=alert.rule, channel=alert.channel, title=alert.title,
                      severity="critical" if event.status is RunStatus.FAILED else "warning",
                      subject_id=alert.subject_id),
        )

    return handle
