"""Running a connector's ``check`` and ``discover``: in a worker thread, under a time limit,
with driver errors turned into safe messages by the connector boundary
(:mod:`tidemark.connectors.boundary`)."""

from __future__ import annotations

import asyncio
import logging
import time

from tidemark.connectors import Catalog, ConnectorConfig, Source
from tidemark.connectors.boundary import source_call
from tidemark.errors import FailureKind, SourceError
from tidemark_connector.metrics import CATALOG_DISCOVERIES, CONNECTION_CHECK_DURATION, CONNECTION_CHECKS
from tidemark_connector.schemas import CheckResult

log = logging.getLogger(__name__)


def run_check(source: type[Source], config: ConnectorConfig) -> CheckResult:
    """Blocking: call from a worker thread. A failing check is a result, not an exception."""
    instance: Source | None = None
    try:
        with source_call(config, source.type_name):
            instance = source(config)
            instance.check()
    except SourceError as error:
        return CheckResult(status="failed", message=error.message, kind=error.kind)
    finally:
        if instance is not None:
            _close(instance)
    return CheckResult(status="succeeded")


def run_discover(source: type[Source], config: ConnectorConfig) -> Catalog:
    """Blocking: call from a worker thread. Raises SourceError only."""
    instance: Source | None = None
    try:
        with source_call(config, source.type_name):
            instance = source(config)
            return instance.discover()
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
