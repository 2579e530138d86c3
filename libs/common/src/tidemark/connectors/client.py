"""Ask connector-svc's internal routes for a connection's config or catalog.

Workers fetch the config, secrets revealed, right before reading a source; nothing else
should need secrets. orchestrator-svc discovers the catalog to validate pipelines against it.
Failures come back classified: a missing connection or a refused token is a
:class:`ConfigError`, an unreachable or failing service a :class:`TransientError`, and a
source that refuses or cannot be reached a :class:`SourceError` of that kind.
"""

from __future__ import annotations

import functools
import ssl
import uuid
from typing import Any

import httpx

from tidemark.connectors.base import Catalog
from tidemark.errors import (
    ConfigError,
    FailureKind,
    NotFoundError,
    SourceError,
    TerminalError,
    TidemarkError,
    TransientError,
)

DEFAULT_TIMEOUT = 10.0
# connector-svc gives up discovering after 120 s by default: wait a little longer, so its
# answer (which says what the source did) arrives rather than our own timeout.
DISCOVER_TIMEOUT = 130.0


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's TLS context for these requests. Building one reads the whole CA bundle (about
    0.1 s, a tenth of a small run); a worker forked from ingest-svc's warm fork server inherits it
    built (``tidemark_ingest.worker.warm``)."""
    return httpx.create_ssl_context()


def _url(base_url: str, connection_id: uuid.UUID | str) -> str:
    return f"{base_url.rstrip('/')}/internal/v1/connections/{connection_id}/config"


def _headers(internal_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {internal_token}", "Accept": "application/json"}


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return response.reason_phrase


def _result(response: httpx.Response, connection_id: uuid.UUID | str) -> tuple[str, dict[str, Any]]:
    status = response.status_code
    if status == 200:
        try:
            body = response.json()
            return str(body["type"]), dict(body["config"])
        except (ValueError, KeyError, TypeError) as exc:
            raise TerminalError(
                f"connector-svc answered an unexpected body for connection {connection_id}"
            ) from exc
    if status == 404:
        raise ConfigError(
            f"connection {connection_id} does not exist (was it deleted?)", field="connection_id"
        )
    if status in (401, 403):
        raise ConfigError("connector-svc refused the internal token; check TIDEMARK_INTERNAL_TOKEN")
    if status == 429 or status >= 500:
        raise TransientError(f"connector-svc answered {status}: {_detail(response)}")
    if status == 422:
        raise ConfigError(f"connection {connection_id}: {_detail(response)}")
    raise TerminalError(f"connector-svc answered {status}: {_detail(response)}")


def _unreachable(base_url: str, exc: httpx.TransportError) -> TidemarkError:
    return TransientError(f"connector-svc at {base_url} is unreachable ({type(exc).__name__})")


def fetch_connection_config(
    base_url: str,
    internal_token: str,
    connection_id: uuid.UUID | str,
    *,
    client: httpx.Client | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT,
) -> tuple[str, dict[str, Any]]:
    """``(connector type, config with secrets)``. Blocking: for workers, not for event loops."""
    own = client is None
    http = client if client is not None else httpx.Client(timeout=timeout_seconds, verify=tls_context())
    try:
        response = http.get(_url(base_url, connection_id), headers=_headers(internal_token))
    except httpx.TransportError as exc:
        raise _unreachable(base_url, exc) from exc
    finally:
        if own:
            http.close()
    return _result(response, connection_id)


async def afetch_connection_config(
    base_url: str,
    internal_token: str,
    connection_id: uuid.UUID | str,
    *,
    client: httpx.AsyncClient | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT,
) -> tuple[str, dict[str, Any]]:
    """The async twin of :func:`fetch_connection_config`."""
    response = await _asend("GET", _url(base_url, connection_id), base_url, internal_token, client, timeout_seconds,
                            per_request=False)
    return _result(response, connection_id)


async def _asend(method: str, url: str, base_url: str, internal_token: str, client: httpx.AsyncClient | None,
                 timeout_seconds: float, per_request: bool = True) -> httpx.Response:
    """One internal request, on ``client`` or on a client of its own that it closes. ``per_request``:
    ``timeout_seconds`` applies even on a given client (discovery may outlast its default)."""
    own = client is None
    http = client if client is not None else httpx.AsyncClient(timeout=timeout_seconds)
    timeout = timeout_seconds if per_request else httpx.USE_CLIENT_DEFAULT
    try:
        return await http.request(method, url, headers=_headers(internal_token), timeout=timeout)
    except httpx.TransportError as exc:
        raise _unreachable(base_url, exc) from exc
    finally:
        if own:
            await http.aclose()


def _discover_url(base_url: str, connection_id: uuid.UUID | str) -> str:
    return f"{base_url.rstrip('/')}/internal/v1/connections/{connection_id}/discover"


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _catalog(response: httpx.Response, connection_id: uuid.UUID | str) -> Catalog:
    status = response.status_code
    if status == 200:
        try:
            return Catalog.model_validate(response.json())
        except ValueError as exc:  # pydantic's ValidationError is a ValueError too
            raise TerminalError(
                f"connector-svc answered an unexpected catalog for connection {connection_id}"
            ) from exc
    problem = _problem(response)
    detail = str(problem.get("detail") or response.reason_phrase)
    if status == 404:
        raise NotFoundError(f"connection {connection_id} does not exist", field="connection_id")
    if status in (401, 403):
        raise ConfigError("connector-svc refused the internal token; check TIDEMARK_INTERNAL_TOKEN")
    if str(problem.get("type", "")).endswith("/source-error") and status in (422, 503):
        kind = problem.get("kind")
        raise SourceError(detail, FailureKind(kind) if kind in set(FailureKind) else FailureKind.TERMINAL)
    if status == 429 or status >= 500:
        raise TransientError(f"connector-svc answered {status}: {detail}")
    raise TerminalError(f"connector-svc answered {status}: {detail}")


async def adiscover_catalog(
    base_url: str,
    internal_token: str,
    connection_id: uuid.UUID | str,
    *,
    client: httpx.AsyncClient | None = None,
    timeout_seconds: float = DISCOVER_TIMEOUT,
) -> Catalog:
    """The connection's catalog, discovered now by connector-svc.

    Raises :class:`NotFoundError` (field ``connection_id``) for an unknown connection,
    :class:`SourceError` when the source refused (kind ``config``/``terminal``) or cannot be
    reached (kind ``transient``), :class:`TransientError` when connector-svc itself cannot."""
    response = await _asend("POST", _discover_url(base_url, connection_id), base_url, internal_token, client,
                            timeout_seconds)
    return _catalog(response, connection_id)
