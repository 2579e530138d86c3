"""Registry of connector types: built-ins by import path (loaded lazily), plus plug-ins
registered under the ``tidemark.connectors`` entry-point group."""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from tidemark.connectors.base import Source
from tidemark.errors import ConfigError

BUILTIN: dict[str, str] = {
    "sqlite": "tidemark.connectors.sql.sqlite:SQLiteSource",
    "postgres": "tidemark.connectors.sql.postgres:PostgresSource",
    "mysql": "tidemark.connectors.sql.mysql:MySQLSource",
    "mariadb": "tidemark.connectors.sql.mysql:MySQLSource",
    "mssql": "tidemark.connectors.sql.mssql:MssqlSource",
    "redshift": "tidemark.connectors.sql.redshift:RedshiftSource",
    "s3": "tidemark.connectors.files.s3:S3Source",
    "azure_blob": "tidemark.connectors.files.azure_blob:AzureBlobSource",
    "hubspot": "tidemark.connectors.rest.hubspot:HubSpotSource",
    "jira": "tidemark.connectors.rest.jira:JiraSource",
    "salesforce": "tidemark.connectors.rest.salesforce:SalesforceSource",
}


@cache
def _all_paths() -> dict[str, str]:
    paths = dict(BUILTIN)
    for ep in entry_points(group="tidemark.connectors"):
        paths.setdefault(ep.name, ep.value)
    return paths


def connector_types() -> list[str]:
    return sorted(_all_paths())


def distinct_types() -> list[str]:
    """One name per connector class, without importing any: the first name registered for its path
    (an alias such as ``mariadb`` shares ``mysql``'s class, whose ``type_name`` is ``mysql``)."""
    seen: dict[str, str] = {}
    for name, path in _all_paths().items():
        seen.setdefault(path, name)
    return sorted(seen.values())


def get_connector(type_name: str) -> type[Source]:
    path = _all_paths().get(type_name)
    if path is None:
        raise ConfigError(
            f"unknown connector type {type_name!r}; known: {', '.join(connector_types())}", field="type"
        )
    module_name, _, attr = path.partition(":")
    cls: Any = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Source)):
        raise ConfigError(f"connector {type_name!r} does not implement Source")
    return cls
