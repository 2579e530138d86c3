"""Open the Iceberg catalog the settings name. Blocking: call it off the event loop."""

from __future__ import annotations

from pathlib import Path

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
        return SqlCatalog(CATALOG_NAME, **props)
    except SQLAlchemyError as exc:
        where = url.render_as_string(hide_password=True)
        raise TransientError(f"cannot open the Iceberg SQL catalog at {where}: {_first_line(exc)}") from exc


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
