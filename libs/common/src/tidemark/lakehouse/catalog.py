"""Open the Iceberg catalog the settings name. Blocking: call it off the event loop."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import (
    ForbiddenError,
    OAuthError,
    RESTError,
    ServerError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError

from tidemark.errors import ConfigError, TransientError
from tidemark.lakehouse.settings import LakehouseSettings

CATALOG_NAME = "tidemark"


def open_catalog(settings: LakehouseSettings) -> Catalog:
    """The catalog, built from ``settings`` alone (never from ``~/.pyiceberg.yaml`` or ``PYICEBERG_*``)."""
    if not settings.catalog_uri or not settings.warehouse:
        raise ConfigError("lakehouse: catalog_uri and warehouse are empty; resolve the settings against a home")
    props = settings.catalog_properties()
    if settings.catalog_type == "sql":
        return _sql_catalog(settings, props)
    return _rest_catalog(settings, props)


def _sql_catalog(settings: LakehouseSettings, props: dict[str, str]) -> Catalog:
    from pyiceberg.catalog.sql import SqlCatalog

    url = sa.engine.make_url(settings.catalog_uri)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        catalog = SqlCatalog(CATALOG_NAME, **props)
    except SQLAlchemyError as exc:
        where = url.render_as_string(hide_password=True)
        raise TransientError(f"cannot open the Iceberg SQL catalog at {where}: {_first_line(exc)}") from exc
    if url.get_backend_name() == "sqlite":
        _one_writer(catalog.engine)
    return catalog


# SQLite takes one writer at a time: a second one waits in its busy handler and fails with "database
# is locked" once the timeout is spent. A worker loading several streams at once therefore lets one
# of its threads write the catalog at a time, from its first INSERT, UPDATE or DELETE until the
# connection goes back to the pool (after the commit): the row writes take turns, while reading
# table metadata, staging and writing metadata files, and the loads themselves, do not wait.
_SQLITE_WRITES = threading.Lock()
_HOLDS_WRITE = "tidemark.holds-write"
_WRITES = ("INSERT", "UPDATE", "DELETE")


def _one_writer(engine: sa.Engine) -> None:
    def before(conn: sa.Connection, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip()[:6].upper() in _WRITES and not conn.info.get(_HOLDS_WRITE):
            _SQLITE_WRITES.acquire()
            conn.info[_HOLDS_WRITE] = True

    def done(dbapi_connection: Any, record: Any, *_: Any) -> None:
        if record is not None and record.info.pop(_HOLDS_WRITE, False):
            _SQLITE_WRITES.release()

    event.listen(engine, "before_cursor_execute", before)
    # Checked in after its commit or rollback; invalidated when the connection broke.
    event.listen(engine.pool, "checkin", done)
    event.listen(engine.pool, "invalidate", done)


def _rest_catalog(settings: LakehouseSettings, props: dict[str, str]) -> Catalog:
    import requests
    from pyiceberg.catalog.rest import RestCatalog

    where = settings.catalog_uri
    try:
        return RestCatalog(CATALOG_NAME, **props)
    except (UnauthorizedError, ForbiddenError, OAuthError) as exc:
        raise ConfigError(f"the Iceberg REST catalog at {where} refused our credentials") from exc
    except (ServerError, ServiceUnavailableError, TooManyRequestsError, requests.RequestException) as exc:
        raise TransientError(f"cannot reach the Iceberg REST catalog at {where}") from exc
    except RESTError as exc:
        # The server's own words (never our secrets): e.g. an unknown warehouse.
        raise ConfigError(f"the Iceberg REST catalog at {where} refused the configuration: {exc}") from exc


def close_catalog(catalog: Catalog) -> None:
    """Release what the catalog holds open: the SQL catalog's connection pool, the REST session."""
    engine = getattr(catalog, "engine", None)
    if isinstance(engine, sa.Engine):
        engine.dispose()
    session = getattr(catalog, "_session", None)
    if session is not None:
        session.close()


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
