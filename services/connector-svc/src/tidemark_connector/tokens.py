"""/v1/tokens: API tokens an admin lists, creates and revokes. connector-svc owns them (it already keeps
secrets); it stores only their SHA-256 digests and tells every service through ``token.created`` and
``token.revoked`` (each keeps its own projection, see :mod:`tidemark.access.projection`). A new token's
value appears once, in the response that created it."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from tidemark.access import Scope, TokenRegistry, digest
from tidemark.access.tokens import NAME, IssuedToken
from tidemark.api.openapi import problem_responses
from tidemark.db import utcnow
from tidemark.errors import ConflictError, NotFoundError
from tidemark.events import TokenCreated, TokenRevoked
from tidemark_connector.deps import Runtime
from tidemark_connector.models import TABLES

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])
PREFIX = "tmk_"


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME.pattern, description="A unique name among active tokens: who or what uses it.")
    scope: Scope = Field(description="`read` views; `write` also creates, changes, triggers, cancels and deletes; "
                                     "`admin` also manages tokens and alert rules.")


class TokenOut(BaseModel):
    id: uuid.UUID | None = Field(description="Set for tokens the API issued; configured tokens have none.")
    name: str
    scope: Scope
    source: Literal["api", "config"] = Field(description="`config`: from settings or the mounted tokens file.")
    created_at: datetime | None = None
    revoked_at: datetime | None = None


class TokenIssued(TokenOut):
    token: str = Field(description="The bearer token. Shown only here, once: Tidemark keeps only its digest.")


def _out(row: sa.Row[tuple[object, ...]]) -> TokenOut:
    return TokenOut(id=row.token_id, name=row.name, scope=Scope(row.scope), source="api", created_at=row.created_at,
                    revoked_at=row.revoked_at)


@router.get("")
async def list_tokens(request: Request, rt: Runtime) -> list[TokenOut]:
    """Every token by name and scope, configured ones first; never a value or a digest."""
    registry: TokenRegistry = request.app.state.api_tokens
    table = TABLES.tokens
    async with rt.sessions() as session:
        rows = (await session.execute(sa.select(table).order_by(table.c.created_at, table.c.name))).all()
    configured = [TokenOut(id=None, name=t.name, scope=t.scope, source="config") for t in registry.configured]
    return configured + [_out(r) for r in rows]


@router.get("/{token_id}", responses=problem_responses(404))
async def get_token(token_id: uuid.UUID, rt: Runtime) -> TokenOut:
    table = TABLES.tokens
    async with rt.sessions() as session:
        row = (await session.execute(sa.select(table).where(table.c.token_id == token_id))).first()
    if row is None:
        raise NotFoundError(f"No token {token_id}.")
    return _out(row)


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(409))
async def create_token(body: TokenCreate, request: Request, rt: Runtime) -> TokenIssued:
    """Create a token; its value is in this response only. 409: an active token has this name."""
    registry: TokenRegistry = request.app.state.api_tokens
    table = TABLES.tokens
    if any(t.name == body.name for t in registry.configured):
        raise ConflictError(f"A configured token is named {body.name!r}.", errors=[
            {"field": "name", "message": "taken by a configured token", "type": "conflict"}])
    value = PREFIX + secrets.token_urlsafe(32)
    token = IssuedToken(uuid.uuid4(), body.name, body.scope, digest(value), utcnow(), None)
    async with rt.transaction() as session:
        taken = await session.scalar(sa.select(sa.func.count()).select_from(table).where(
            table.c.name == body.name, table.c.revoked_at.is_(None)))
        if taken:
            raise ConflictError(f"An active token is named {body.name!r}; revoke it first or pick another name.",
                                errors=[{"field": "name", "message": "taken by an active token", "type": "conflict"}])
        await session.execute(sa.insert(table).values(
            token_id=token.token_id, name=token.name, scope=str(token.scope), digest=token.digest,
            created_at=token.created_at, revoked_at=None))
        await rt.emit(session, TokenCreated(token_id=token.token_id, name=token.name, scope=token.scope.value,
                                            digest=token.digest, created_at=token.created_at))
    registry.learn(token)
    return TokenIssued(id=token.token_id, name=token.name, scope=token.scope, source="api",
                       created_at=token.created_at, token=value)


@router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404))
async def revoke_token(token_id: uuid.UUID, request: Request, rt: Runtime) -> Response:
    """Revoke a token: every service refuses it within seconds (docs/security.md). Revoking twice is a no-op."""
    registry: TokenRegistry = request.app.state.api_tokens
    table = TABLES.tokens
    async with rt.transaction() as session:
        row = (await session.execute(sa.select(table).where(table.c.token_id == token_id))).first()
        if row is None:
            raise NotFoundError(f"No token {token_id}.")
        revoked = None
        if row.revoked_at is None:
            revoked = IssuedToken(row.token_id, row.name, Scope(row.scope), row.digest, row.created_at, utcnow())
            await session.execute(sa.update(table).where(table.c.token_id == token_id)
                                  .values(revoked_at=revoked.revoked_at))
            await rt.emit(session, TokenRevoked(
                token_id=revoked.token_id, name=revoked.name, scope=revoked.scope.value, digest=revoked.digest,
                created_at=revoked.created_at, revoked_at=revoked.revoked_at))
    if revoked is not None:
        registry.learn(revoked)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
