"""Calling a handler with the retry rules every bus shares."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from tidemark.aio import finish_before_cancel
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


async def dispatch_many(group: str, handler: Handler, envelopes: Sequence[Envelope]) -> None:
    """Events fetched together, in order: in one go when the handler can (``handler.many``, e.g. one
    transaction for all, a busy consumer's round trips and commits shared), else one by one. Any
    failure of the whole (its transaction rolled back) goes over them one by one, each with the
    rules of :func:`dispatch`: retried when transient, skipped when poison.

    A consumer stopped meanwhile lets the batch finish first (:func:`~tidemark.aio.finish_before_cancel`),
    so no transaction of it is cut half-way."""
    await finish_before_cancel(_dispatch_many(group, handler, envelopes))


async def _dispatch_many(group: str, handler: Handler, envelopes: Sequence[Envelope]) -> None:
    many = getattr(handler, "many", None)
    if many is not None and len(envelopes) > 1:
        try:
            await many(envelopes)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("handling events together failed; one by one instead",
                     extra=fields(group=group, events=len(envelopes), error=type(exc).__name__))
        else:
            for envelope in envelopes:
                EVENTS_CONSUMED.labels(group, envelope.type, "ok").inc()
            return
    for envelope in envelopes:
        await dispatch(group, handler, envelope)
