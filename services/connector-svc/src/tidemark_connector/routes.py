"""/v1/connector-types and /v1/connections: manage connections, check them, discover their streams.

Secrets go in, never out: responses show them masked. The one way out is the internal route.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Literal

from fastapi import APIRouter, Response, status

from tidemark.api.openapi import problem_responses
from tidemark.connectors import Catalog, connector_types, get_connector
from tidemark.events import ConnectionChanged
from tidemark_connector import logic, probes, repository
from tidemark_connector.deps import ConnectorRuntime, Runtime
from tidemark_connector.models import Connection
from tidemark_connector.schemas import (
    CheckResult,
    ConnectionConfigOut,
    ConnectionCreate,
    ConnectionOut,
    ConnectionUpdate,
    ConnectorTypeOut,
)

types_router = APIRouter(prefix="/v1/connector-types", tags=["connectors"])
router = APIRouter(prefix="/v1/connections", tags=["connections"])
internal_router = APIRouter(prefix="/internal/v1/connections", tags=["internal"])


def _changed(connection: Connection, change: Literal["created", "updated", "deleted"]) -> ConnectionChanged:
    return ConnectionChanged(
        connection_id=connection.id,
        name=connection.name,
        connector_type=connection.connector_type,
        change=change,
    )


@types_router.get("")
async def list_connector_types() -> list[ConnectorTypeOut]:
    out = []
    for name in connector_types():
        source = get_connector(name)
        out.append(
            ConnectorTypeOut(
                type=name,
                title=source.title,
                config_schema=source.config_model.model_json_schema(),
                secret_fields=source.config_model.secret_fields(),
            )
        )
    return out


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(409))
async def create_connection(body: ConnectionCreate, rt: Runtime) -> ConnectionOut:
    """Validate the config against the connector's model; store it, secrets encrypted. 409: name taken."""
    box = rt.state.box
    source = logic.connector_class(body.type)
    config = logic.parse_config(source, body.config)
    await asyncio.to_thread(logic.check_egress, config, rt.settings.platform)
    public, sealed = logic.seal(box, config)
    async with rt.transaction() as session:
        connection = await repository.add_connection(session, body.name, body.type, public, sealed)
        await rt.emit(session, _changed(connection, "created"))
        return logic.connection_out(box, connection)


@router.get("")
async def list_connections(rt: Runtime) -> list[ConnectionOut]:
    box = rt.state.box
    async with rt.sessions() as session:
        return [logic.connection_out(box, c) for c in await repository.list_connections(session)]


@router.get("/{connection_id}")
async def get_connection(connection_id: uuid.UUID, rt: Runtime) -> ConnectionOut:
    box = rt.state.box
    async with rt.sessions() as session:
        return logic.connection_out(box, await repository.get_connection(session, connection_id))


@router.patch("/{connection_id}", responses=problem_responses(409))
async def update_connection(connection_id: uuid.UUID, body: ConnectionUpdate, rt: Runtime) -> ConnectionOut:
    """Rename, and/or merge ``config`` onto the stored one; the result is validated again."""
    box = rt.state.box
    async with rt.transaction() as session:
        connection = await repository.get_connection(session, connection_id, for_update=True)
        source = get_connector(connection.connector_type)
        stored = logic.revealed_config(box, connection)
        merged = logic.merge(stored, body.config or {}, source.config_model.secret_fields())
        config = logic.parse_config(source, merged)
        await asyncio.to_thread(logic.check_egress, config, rt.settings.platform)
        public, sealed = logic.seal(box, config)
        connection = await repository.update_connection(
            session, connection, body.name or connection.name, public, sealed
        )
        await rt.emit(session, _changed(connection, "updated"))
        return logic.connection_out(box, connection)


@router.delete("/{connection_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_connection(connection_id: uuid.UUID, rt: Runtime) -> Response:
    async with rt.transaction() as session:
        connection = await repository.get_connection(session, connection_id, for_update=True)
        await rt.emit(session, _changed(connection, "deleted"))
        await repository.delete_connection(session, connection)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{connection_id}/check", response_model_exclude_none=True)
async def check_connection(connection_id: uuid.UUID, rt: Runtime) -> CheckResult:
    """Try the connection. A failing check is a 200 with ``status: failed``, a message and its kind."""
    async with rt.sessions() as session:
        connection = await repository.get_connection(session, connection_id)
    source, config = logic.load_config(rt.state.box, connection)
    return await probes.check(source, config, rt.settings.check_timeout_seconds)


async def _discover(connection_id: uuid.UUID, rt: ConnectorRuntime) -> Catalog:
    async with rt.sessions() as session:
        connection = await repository.get_connection(session, connection_id)
    source, config = logic.load_config(rt.state.box, connection)
    return await probes.discover(source, config, rt.settings.discover_timeout_seconds)


@router.post("/{connection_id}/discover", responses=problem_responses(503))
async def discover_connection(connection_id: uuid.UUID, rt: Runtime) -> Catalog:
    """The source's streams, their columns (Arrow types), primary keys and cursor candidates.

    A source that refuses is a 422 problem, one that cannot be reached a 503; `kind` says which."""
    return await _discover(connection_id, rt)


@internal_router.get("/{connection_id}/config")
async def reveal_connection_config(connection_id: uuid.UUID, rt: Runtime) -> ConnectionConfigOut:
    """The config with secrets in clear, for workers: the only route secrets leave the service by."""
    async with rt.sessions() as session:
        connection = await repository.get_connection(session, connection_id)
    return ConnectionConfigOut(
        id=connection.id,
        type=connection.connector_type,
        config=logic.revealed_config(rt.state.box, connection),
    )


@internal_router.post("/{connection_id}/discover", responses=problem_responses(503))
async def discover_connection_internal(connection_id: uuid.UUID, rt: Runtime) -> Catalog:
    """The catalog, for services that validate against it (orchestrator-svc checks pipelines with it).

    Same answers as the public route: 404 unknown connection, 422 the source refused (`kind: config`),
    503 it cannot be reached (`kind: transient`)."""
    return await _discover(connection_id, rt)
