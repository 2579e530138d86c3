"""The one error boundary between Tidemark and a connector: whatever a source raises leaves
as a :class:`SourceError` whose message holds no secret of the connection's config.

Drivers echo connection strings and DSNs in their errors, sometimes URL-encoded, so every
secret field's value goes, in plain and URL-encoded forms. Which message a driver error
becomes is each connector's own business (its ``translate``); this module only guarantees
that no secret passes, and keeps the failure kind. connector-svc's check and discover and
the ingest worker's source calls all run inside :func:`source_call`.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tidemark.connectors.base import ConnectorConfig
from tidemark.errors import FailureKind, SourceError, TidemarkError
from tidemark.logs import fields
from tidemark.redact import secret_forms

log = logging.getLogger("tidemark.connectors")

MASK = "**********"
MESSAGE_LIMIT = 1000
TRACEBACK_LIMIT = 20_000

T = TypeVar("T")


def secret_values(config: ConnectorConfig) -> list[str]:
    """The values of ``config``'s secret fields (the ones set)."""
    revealed = config.reveal()
    return [str(revealed[name]) for name in config.secret_fields() if revealed.get(name) is not None]


def scrub(message: str, secrets: Iterable[str], limit: int | None = MESSAGE_LIMIT) -> str:
    """``message`` with every secret value replaced by the mask, cut to ``limit`` characters."""
    # Longest first, so a secret containing another is replaced whole.
    variants = {v for s in secrets if s for v in secret_forms(s)}
    for value in sorted(variants, key=len, reverse=True):
        message = message.replace(value, MASK)
    return message if limit is None or len(message) <= limit else message[: limit - 1] + "…"


def safe_error(exc: BaseException, config: ConnectorConfig, connector_type: str) -> SourceError:
    """``exc`` raised by a source as a SourceError safe to show: secrets gone, kind kept."""
    secrets = secret_values(config)
    if isinstance(exc, TidemarkError):
        # `field` names a config field (never a value); other detail might hold anything.
        where = {"field": exc.detail["field"]} if isinstance(exc.detail.get("field"), str) else {}
        return SourceError(scrub(exc.message, secrets), exc.kind, **where)
    # The traceback is for operators, but drivers put DSNs in messages: scrub it too.
    log.warning(
        "connector %s raised an unexpected error:\n%s",
        connector_type,
        scrub("".join(traceback.format_exception(exc)), secrets, limit=TRACEBACK_LIMIT),
        extra=fields(connector_type=connector_type),
    )
    kind = FailureKind.TRANSIENT if isinstance(exc, ConnectionError | TimeoutError) else FailureKind.TERMINAL
    return SourceError(scrub(f"{type(exc).__name__}: {exc}", secrets), kind)


@contextmanager
def source_call(config: ConnectorConfig, connector_type: str) -> Iterator[None]:
    """Run a source call; any exception leaves as :func:`safe_error`'s SourceError."""
    try:
        yield
    except Exception as exc:
        # Not chained: the driver's own exception may hold the secret this removes.
        raise safe_error(exc, config, connector_type) from None


def source_batches(batches: Iterable[T], config: ConnectorConfig, connector_type: str) -> Iterator[T]:
    """``batches`` (a source's read), each step inside :func:`source_call`; what consumes the
    batches (the writer) stays outside, so its own errors are not mistaken for the source's."""
    it = iter(batches)
    while True:
        with source_call(config, connector_type):
            try:
                batch = next(it)
            except StopIteration:
                return
        yield batch
