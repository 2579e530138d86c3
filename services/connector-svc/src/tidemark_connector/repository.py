"""Data access for connections. Functions flush; the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.errors import ConflictError, NotFoundError
from tidemark.ids import new_id
from tidemark_connector.models import Connection


async def _flush(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise ConflictError(f"a connection named {name!r} already exists", field="name") from exc


async def add_connection(
    session: AsyncSession, name: str, connector_type: str, config: dict[str, Any], secrets: str
) -> Connection:
    connection = Connection(
        id=new_id(), name=name, connector_type=connector_type, config=config, secrets=secrets
    )
    session.add(connection)
    await _flush(session, name)
    return connection


async def get_connection(
    session: AsyncSession, connection_id: uuid.UUID, for_update: bool = False
) -> Connection:
    connection = await session.get(Connection, connection_id, with_for_update=for_update)
    if connection is None:
        raise NotFoundError(f"connection {connection_id} does not exist")
    return connection


async def list_connections(session: AsyncSession) -> Sequence[Connection]:
    return (await session.scalars(sa.select(Connection).order_by(Connection.name))).all()


async def update_connection(
    session: AsyncSession, connection: Connection, name: str, config: dict[str, Any], secrets: str
) -> Connection:
    connection.name = name
    connection.config = config
    connection.secrets = secrets
    await _flush(session, name)
    return connection


async def delete_connection(session: AsyncSession, connection: Connection) -> None:
    await session.delete(connection)
    await session.flush()
