"""Each service's projection of issued tokens: the ``token.created`` and ``token.revoked`` events go
into its own ``access_tokens`` table (once per service, like any consumer) and into memory, and every
replica reloads the table every ``auth.refresh_seconds``, so a replica whose peer consumed the event
learns it too. A revoked token is refused by a service as soon as it holds the event, and by every
replica of it within ``auth.refresh_seconds`` after that. The same pass re-reads the tokens files."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from tidemark.access.scopes import Scope
from tidemark.access.tokens import IssuedToken, TokenRegistry
from tidemark.bus.inbox import insert_ignore
from tidemark.events import TokenCreated, TokenRevoked, Topic
from tidemark.service import EventContext, ServiceRuntime

log = logging.getLogger(__name__)


class TokenProjection:
    """The issued tokens one service knows, by digest."""

    def __init__(self, runtime: ServiceRuntime[Any, Any]) -> None:
        self._runtime = runtime
        self._table = runtime.definition.tables.tokens
        self._tokens: dict[str, IssuedToken] = {}

    def get(self, token_digest: str) -> IssuedToken | None:
        return self._tokens.get(token_digest)

    def learn(self, token: IssuedToken) -> None:
        known = self._tokens.get(token.digest)
        if known is not None and known.revoked_at is not None and token.revoked_at is None:
            return  # revocation is final: an older view never brings a token back
        self._tokens[token.digest] = token

    async def reload(self) -> None:
        async with self._runtime.sessions() as session:
            rows = (await session.execute(sa.select(self._table))).all()
        for row in rows:
            self.learn(IssuedToken(row.token_id, row.name, Scope(row.scope), row.digest, row.created_at,
                                   row.revoked_at))

    async def refresh_forever(self, seconds: float, registry: TokenRegistry) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.reload()
            except (DBAPIError, OSError) as exc:
                # The last known set stays in force; the next pass tries again.
                log.warning("cannot reload the issued tokens: %s", type(exc).__name__)
            await asyncio.to_thread(registry.reload_files)


def subscribe(runtime: ServiceRuntime[Any, Any], projection: TokenProjection) -> None:
    """Register the ``token.*`` consumer; before the runtime starts its bus."""

    async def created(ctx: EventContext[Any, Any], event: TokenCreated) -> None:
        await _store(ctx, projection, event, None)

    async def revoked(ctx: EventContext[Any, Any], event: TokenRevoked) -> None:
        await _store(ctx, projection, event, event)

    runtime.consume("access", [Topic.ACCESS], {TokenCreated: created, TokenRevoked: revoked})


async def _store(ctx: EventContext[Any, Any], projection: TokenProjection, event: TokenCreated | TokenRevoked,
                 revocation: TokenRevoked | None) -> None:
    table = ctx.runtime.definition.tables.tokens
    revoked_at = revocation.revoked_at if revocation else None
    row = {"token_id": event.token_id, "name": event.name, "scope": event.scope, "digest": event.digest,
           "created_at": event.created_at, "revoked_at": revoked_at}
    inserted = await insert_ignore(ctx.session, table, row)
    if revocation is not None and not inserted:
        await ctx.session.execute(sa.update(table).where(table.c.token_id == event.token_id,
                                                         table.c.revoked_at.is_(None))
                                  .values(revoked_at=revocation.revoked_at))
    # The event is the authority's word: applying it before our commit refuses a revoked token sooner.
    projection.learn(IssuedToken(event.token_id, event.name, Scope(event.scope), event.digest, event.created_at,
                                 revoked_at))


async def attach(runtime: ServiceRuntime[Any, Any], projection: TokenProjection, registry: TokenRegistry) -> None:
    """Load the projection (after migrations ran), keep it fresh, and let the app's registry consult it."""
    await projection.reload()
    runtime.spawn(projection.refresh_forever(runtime.settings.auth.refresh_seconds, registry), "token-refresh")
    registry.attach(projection)


__all__ = ["TokenProjection", "attach", "subscribe"]
