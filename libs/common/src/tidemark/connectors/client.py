"""Fetch a connection's config, secrets revealed, from connector-svc's internal route.

Workers call this right before reading a source; nothing else should need secrets.
Failures come back classified: a missing connection or a refused token is a
:class:`ConfigError`, an unreachable or failing service a :class:`TransientError`.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tidemark.errors import ConfigError, TerminalError, TidemarkError, TransientError

DEFAULT_TIMEOUT = 10.0


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
    http = client if client is not None else httpx.Client(timeout=timeout_seconds)
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
    own = client is None
    http = client if client is not None else httpx.AsyncClient(timeout=timeout_seconds)
    try:
        response = await http.get(_url(base_url, connection_id), headers=_headers(internal_token))
    except httpx.TransportError as exc:
        raise _unreachable(base_url, exc) from exc
    finally:
        if own:
            await http.aclose()
    return _result(response, connection_id)
