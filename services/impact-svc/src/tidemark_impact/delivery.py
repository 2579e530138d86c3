"""Sending alerts to webhooks (generic JSON, or Slack-compatible ``{"text": ...}``), with retries and
backoff (tenacity), off the event path: a failing webhook delays nothing but its own alert.

An alert waits as ``pending``; the sender claims it (``sending``, so two replicas never send it
twice), posts it, and ends it ``sent`` (with ``alert.sent``) or ``failed`` with the last error. A
claim left behind by a sender that died is taken again once ``delivery_stale_seconds`` old."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt, wait_exponential

from tidemark.aio import wait_for_event
from tidemark.db import utcnow
from tidemark.events import AlertSent
from tidemark.logs import fields
from tidemark_impact.deps import ImpactRuntime
from tidemark_impact.metrics import ALERT_DELIVERIES
from tidemark_impact.models import Alert, AlertRule
from tidemark_impact.settings import ImpactSettings

log = logging.getLogger("tidemark.impact")


class RetryableDeliveryError(Exception):
    """The receiver may take it later: a transport error, 429 or 5xx."""


class RefusedDeliveryError(Exception):
    """The receiver refused it for good (4xx): retrying would not help."""


def body(alert: Alert, channel: str) -> dict[str, Any]:
    if channel == "slack":
        lines = [alert.title]
        for change in (alert.detail or {}).get("changes", [])[:20]:
            column = f".{change['column']}" if change.get("column") else ""
            lines.append(f"• {change['kind']}: {change['stream']}{column}"
                         + (" (breaking)" if change.get("breaking") else ""))
        return {"text": "\n".join(lines)}
    return {"alert_id": str(alert.id), "rule": alert.rule, "severity": alert.severity, "title": alert.title,
            "subject_id": alert.subject_id, "created_at": alert.created_at.isoformat(), **(alert.detail or {})}


async def post(http: httpx.AsyncClient, url: str, payload: dict[str, Any], seconds: float) -> None:
    try:
        response = await http.post(url, json=payload, timeout=seconds)
    except httpx.TransportError as exc:
        raise RetryableDeliveryError(f"{type(exc).__name__}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableDeliveryError(f"the webhook answered {response.status_code}")
    if response.status_code >= 400:
        raise RefusedDeliveryError(f"the webhook answered {response.status_code}")


def _deliverable(settings: ImpactSettings) -> sa.ColumnElement[bool]:
    """Pending, or taken by a sender that never finished (it died): one replica takes it at a time."""
    stale = utcnow() - timedelta(seconds=settings.delivery_stale_seconds)
    return sa.or_(Alert.delivery == "pending", sa.and_(Alert.delivery == "sending", Alert.claimed_at < stale))


async def deliver(runtime: ImpactRuntime, alert_id: Any) -> None:
    settings = runtime.settings
    async with runtime.transaction() as session:
        claimed = await session.execute(sa.update(Alert).where(Alert.id == alert_id, _deliverable(settings))
                                        .values(delivery="sending", claimed_at=utcnow()))
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return
        alert = await session.get(Alert, alert_id)
        rule = await session.get(AlertRule, alert.rule_id) if alert is not None and alert.rule_id else None
    if alert is None or rule is None:
        await _finish(runtime, alert_id, "failed", 0, "its alert rule was deleted")
        return
    attempts, error = 0, None
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(settings.delivery_attempts),
            wait=wait_exponential(multiplier=settings.delivery_backoff_seconds, max=60),
            retry=retry_if_exception_type(RetryableDeliveryError),
        ):
            with attempt:
                attempts += 1
                await post(runtime.state.http, rule.url, body(alert, rule.channel), settings.delivery_timeout_seconds)
    except RetryError as exc:
        error = str(exc.last_attempt.exception())
    except RefusedDeliveryError as exc:
        error = str(exc)
    await _finish(runtime, alert_id, "failed" if error else "sent", attempts, error)


async def _finish(runtime: ImpactRuntime, alert_id: Any, outcome: str, attempts: int, error: str | None) -> None:
    ALERT_DELIVERIES.labels(outcome=outcome).inc()
    async with runtime.transaction() as session:
        alert = await session.get(Alert, alert_id)
        if alert is None:
            return
        alert.delivery, alert.attempts, alert.last_error = outcome, alert.attempts + attempts, error
        if outcome == "sent":
            alert.delivered_at = utcnow()
            await runtime.emit(session, AlertSent(alert_id=alert.id, rule=alert.rule, channel=alert.channel,
                                                  title=alert.title, severity=alert.severity,
                                                  subject_id=alert.subject_id))
        else:
            log.warning("alert delivery failed: %s", error, extra=fields(alert_id=str(alert_id)))


async def _deliver_once(runtime: ImpactRuntime, alert_id: Any, sending: dict[Any, asyncio.Task[None]]) -> None:
    try:
        await deliver(runtime, alert_id)
    except Exception:
        log.exception("alert delivery crashed", extra=fields(alert_id=str(alert_id)))
    finally:
        sending.pop(alert_id, None)


async def run_sender(runtime: ImpactRuntime) -> None:
    """Deliver pending alerts, each in its own task, until cancelled."""
    wakeup = runtime.state.wakeup
    sending: dict[Any, asyncio.Task[None]] = {}
    try:
        while True:
            async with runtime.sessions() as session:
                pending = (await session.scalars(sa.select(Alert.id).where(_deliverable(runtime.settings))
                                                  .order_by(Alert.created_at).limit(100))).all()
            for alert_id in pending:
                if alert_id not in sending:
                    sending[alert_id] = asyncio.create_task(_deliver_once(runtime, alert_id, sending),
                                                            name=f"alert-{alert_id}")
            await wait_for_event(wakeup, runtime.settings.delivery_poll_seconds)
            wakeup.clear()
    finally:
        for task in sending.values():
            task.cancel()
        await asyncio.gather(*sending.values(), return_exceptions=True)
