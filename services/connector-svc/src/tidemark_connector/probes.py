"""Running a connector's ``check`` and ``discover``: in a worker thread, under a time limit,
with driver errors turned into safe messages (secret values scrubbed)."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback

from tidemark.connectors import Catalog, ConnectorConfig, Source
from tidemark.errors import FailureKind, SourceError, TidemarkError
from tidemark.logs import fields
from tidemark_connector.logic import scrub
from tidemark_connector.metrics import CATALOG_DISCOVERIES, CONNECTION_CHECK_DURATION, CONNECTION_CHECKS
from tidemark_connector.schemas import CheckResult

log = logging.getLogger(__name__)


def _secret_values(config: ConnectorConfig) -> list[str]:
    revealed = config.reveal()
    return [str(revealed[name]) for name in config.secret_fields() if revealed.get(name) is not None]


def _as_source_error(exc: Exception, source: type[Source], config: ConnectorConfig) -> SourceError:
    """A driver's own exception as a SourceError whose message is safe to show."""
    secrets = _secret_values(config)
    if isinstance(exc, TidemarkError):
        # `field` names a config field (never a value); other detail might hold anything.
        where = {"field": exc.detail["field"]} if isinstance(exc.detail.get("field"), str) else {}
        return SourceError(scrub(exc.message, secrets), exc.kind, **where)
    # The traceback is for operators, but drivers put DSNs in messages: scrub it too.
    log.warning(
        "connector %s raised an unexpected error:\n%s",
        source.type_name,
        scrub("".join(traceback.format_exception(exc)), secrets, limit=20_000),
        extra=fields(connector_type=source.type_name),
    )
    kind = FailureKind.TRANSIENT if isinstance(exc, ConnectionError | TimeoutError) else FailureKind.TERMINAL
    return SourceError(scrub(f"{type(exc).__name__}: {exc}", secrets), kind)


def run_check(source: type[Source], config: ConnectorConfig) -> CheckResult:
    """Blocking: call from a worker thread. A failing check is a result, not an exception."""
    instance: Source | None = None
    try:
        instance = source(config)
        instance.check()
    except Exception as exc:
        error = _as_source_error(exc, source, config)
        return CheckResult(status="failed", message=error.message, kind=error.kind)
    finally:
        if instance is not None:
            _close(instance)
    return CheckResult(status="succeeded")


def run_discover(source: type[Source], config: ConnectorConfig) -> Catalog:
    """Blocking: call from a worker thread. Raises SourceError only."""
    instance: Source | None = None
    try:
        instance = source(config)
        return instance.discover()
    except Exception as exc:
        raise _as_source_error(exc, source, config) from exc
    finally:
        if instance is not None:
            _close(instance)


def _close(instance: Source) -> None:
    try:
        instance.close()
    except Exception:
        log.warning("closing a %s source failed", instance.type_name, exc_info=True)


async def check(source: type[Source], config: ConnectorConfig, time_limit: float) -> CheckResult:
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(asyncio.to_thread(run_check, source, config), time_limit)
    except TimeoutError:
        # The thread cannot be killed; it finishes on its own and its result is dropped.
        message = f"the check did not finish within {time_limit:g} s"
        result = CheckResult(status="failed", message=message, kind=FailureKind.TRANSIENT)
    CONNECTION_CHECKS.labels(source.type_name, result.status).inc()
    CONNECTION_CHECK_DURATION.labels(source.type_name).observe(time.perf_counter() - started)
    return result


async def discover(source: type[Source], config: ConnectorConfig, time_limit: float) -> Catalog:
    try:
        catalog = await asyncio.wait_for(asyncio.to_thread(run_discover, source, config), time_limit)
    except TimeoutError as exc:
        CATALOG_DISCOVERIES.labels(source.type_name, "failed").inc()
        raise SourceError(f"discovery did not finish within {time_limit:g} s", FailureKind.TRANSIENT) from exc
    except SourceError:
        CATALOG_DISCOVERIES.labels(source.type_name, "failed").inc()
        raise
    CATALOG_DISCOVERIES.labels(source.type_name, "succeeded").inc()
    return catalog
