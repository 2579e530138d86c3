"""The connection catalogs pipelines are validated against, discovered by connector-svc on request.

Services do not import each other: the catalog comes over HTTP from connector-svc's internal
route, with the platform's internal token. Its failures become what the pipeline API answers:
an unknown connection or a source that refuses the connection's settings is the user's to fix
(422 at ``connection_id``); anything that keeps us from asking now is a 503 naming the flag
that saves the pipeline unvalidated.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

from tidemark.connectors import Catalog
from tidemark.connectors.client import adiscover_catalog
from tidemark.errors import ConfigError, FailureKind, NotFoundError, SourceError, TidemarkError
from tidemark_orchestrator.validation import FLAG, cannot_validate, issue


@dataclass(frozen=True)
class Catalogs:
    """Asks connector-svc at ``base_url`` through ``http`` (owned by whoever made it)."""

    base_url: str
    internal_token: str | None
    http: httpx.AsyncClient
    timeout_seconds: float

    async def discover(self, connection_id: uuid.UUID) -> Catalog:
        if self.internal_token is None:
            raise cannot_validate("TIDEMARK_INTERNAL_TOKEN is not set, so orchestrator-svc cannot ask "
                                  "connector-svc for the connection's catalog")
        try:
            return await adiscover_catalog(self.base_url, self.internal_token, connection_id,
                                           client=self.http, timeout_seconds=self.timeout_seconds)
        except NotFoundError as exc:
            message = f"connection {connection_id} does not exist"
            raise ConfigError(message, errors=[issue("connection_id", message, "unknown_connection")]) from exc
        except SourceError as exc:
            if exc.kind is FailureKind.CONFIG:
                message = (f"the connection's source refused: {exc.message}; fix the connection, "
                           f"or save the pipeline unvalidated with `?{FLAG}`")
                raise ConfigError(message, errors=[issue("connection_id", message, "source_refused")]) from exc
            raise cannot_validate(f"the source cannot be reached ({exc.message})") from exc
        except TidemarkError as exc:
            raise cannot_validate(f"connector-svc cannot discover the catalog ({exc.message})") from exc
