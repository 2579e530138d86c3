"""Calling a handler with the retry rules every bus shares."""

from __future__ import annotations

import asyncio
import logging

from tidemark.bus.base import Handler
from tidemark.bus.metrics import EVENTS_CONSUMED
from tidemark.bus.retry import backoff_seconds
from tidemark.errors import TransientError
from tidemark.events import Envelope
from tidemark.logs import fields

log = logging.getLogger(__name__)


async def dispatch(group: str, handler: Handler, envelope: Envelope) -> None:
    """Run ``handler`` until it succeeds, retrying transient failures; skip poison events."""
    attempt = 0
    while True:
        try:
            await handler(envelope)
        except TransientError as exc:
            EVENTS_CONSUMED.labels(group, envelope.type, "retried").inc()
            delay = backoff_seconds(attempt)
            log.warning(
                "transient failure handling event; retrying",
                extra=fields(group=group, event_id=str(envelope.id), type=envelope.type,
                             error=exc.message, retry_in_s=round(delay, 2)),
            )
            attempt += 1
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception:
            EVENTS_CONSUMED.labels(group, envelope.type, "failed").inc()
            log.exception(
                "event handler failed; event skipped",
                extra=fields(group=group, event_id=str(envelope.id), type=envelope.type),
            )
            return
        else:
            EVENTS_CONSUMED.labels(group, envelope.type, "ok").inc()
            return
