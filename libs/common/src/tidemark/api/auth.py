"""Bearer-token authentication and scopes. Tokens are hashed on load; only digests stay in memory.

A /v1 route needs ``read`` for GET and HEAD and ``write`` for every other method; routes a service
declares as admin routes need ``admin`` whatever the method. Internal routes take only the internal
token, and /v1 routes never take it. Every refusal is a problem response (401 without a known token,
403 with a token whose scope is too small) and one log line naming the token (never its value)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tidemark.access import Principal, Scope, TokenRegistry, scope_for_method
from tidemark.access.tokens import digest
from tidemark.errors import AuthenticationError, PermissionDeniedError
from tidemark.logs import fields
from tidemark.settings import PlatformSettings

log = logging.getLogger(__name__)

__all__ = ["TokenVerifier", "digest", "log_denial", "require_admin", "require_internal_token",
           "require_token"]


class TokenVerifier:
    """A fixed set of token digests: the internal service-to-service token."""

    def __init__(self, digests: list[str]) -> None:
        self._digests = frozenset(d.lower() for d in digests)

    @classmethod
    def for_internal(cls, platform: PlatformSettings) -> TokenVerifier:
        token = platform.internal_token
        return cls([digest(token.get_secret_value())] if token is not None else [])

    @property
    def digests(self) -> frozenset[str]:
        return self._digests

    def verify(self, token: str) -> bool:
        candidate = hashlib.sha256(token.encode()).hexdigest()
        # Compare against every digest so timing does not reveal which one matched.
        return any([hmac.compare_digest(candidate, d) for d in self._digests])  # noqa: C419


def log_denial(request: Request, status: int, reason: str, token_name: str | None = None) -> None:
    """The one log line of a refusal: the token's name when it is known, never its value."""
    log.warning("access denied: %s", reason, extra=fields(
        status=status, method=request.method, path=request.url.path, token=token_name or "-"))


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        log_denial(request, 401, "no bearer token")
        raise AuthenticationError("Missing bearer token: send `Authorization: Bearer <token>`.")
    return token.strip()


def authorize(request: Request, needed: Scope) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        token = bearer(request)
        registry: TokenRegistry = request.app.state.api_tokens
        principal = registry.authenticate(token)
        if principal is None:
            log_denial(request, 401, "unknown or revoked token")
            raise AuthenticationError("Invalid bearer token.")
        request.state.principal = principal
    if not principal.scope.allows(needed):
        log_denial(request, 403, f"scope {principal.scope} is not {needed}", principal.name)
        raise PermissionDeniedError(
            f"This request needs a token with the `{needed}` scope; token `{principal.name}` has `{principal.scope}`.",
            required_scope=str(needed), token_scope=str(principal.scope))
    return principal


# Declared only so the OpenAPI document says which token a route needs; `authorize` does the work.
_API_BEARER = HTTPBearer(
    auto_error=False, scheme_name="bearer",
    description="An API token. GET and HEAD need the `read` scope, other methods `write`; token and alert-rule "
                "routes need `admin`.",
)
_INTERNAL_BEARER = HTTPBearer(
    auto_error=False, scheme_name="internal", description="The internal service-to-service token."
)


async def require_token(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_API_BEARER)] = None
) -> Principal:
    return authorize(request, scope_for_method(request.method))


async def require_admin(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_API_BEARER)] = None
) -> Principal:
    return authorize(request, Scope.ADMIN)


async def require_internal_token(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_INTERNAL_BEARER)] = None
) -> None:
    verifier: TokenVerifier = request.app.state.internal_tokens
    if not verifier.verify(bearer(request)):
        log_denial(request, 401, "not the internal token")
        raise AuthenticationError("Invalid bearer token.")
