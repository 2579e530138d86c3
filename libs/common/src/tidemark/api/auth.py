"""Bearer-token authentication. Tokens are hashed on load; only digests stay in memory."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tidemark.errors import AuthenticationError, ConfigError
from tidemark.settings import AuthSettings, PlatformSettings


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenVerifier:
    def __init__(self, digests: Iterable[str]) -> None:
        self._digests = frozenset(d.lower() for d in digests)

    @classmethod
    def for_api(cls, auth: AuthSettings, platform: PlatformSettings) -> TokenVerifier:
        digests = [digest(t.get_secret_value()) for t in auth.tokens] + list(auth.token_hashes)
        if platform.api_token is not None:
            digests.append(digest(platform.api_token.get_secret_value()))
        if auth.tokens_file is not None:
            digests += [digest(t) for t in _read_tokens(auth.tokens_file)]
        return cls(digests)

    @classmethod
    def for_internal(cls, platform: PlatformSettings) -> TokenVerifier:
        token = platform.internal_token
        return cls([digest(token.get_secret_value())] if token is not None else [])

    @property
    def digests(self) -> frozenset[str]:
        return self._digests

    def __bool__(self) -> bool:
        return bool(self._digests)

    def verify(self, token: str) -> bool:
        candidate = digest(token)
        # Compare against every digest so timing does not reveal which one matched.
        return any([hmac.compare_digest(candidate, d) for d in self._digests])  # noqa: C419

    def check(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("Missing bearer token: send `Authorization: Bearer <token>`.")
        if not self.verify(token.strip()):
            raise AuthenticationError("Invalid bearer token.")


def _read_tokens(path: Path) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"auth.tokens_file: cannot read {path}: {exc.strerror}") from exc
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# Declared only so the OpenAPI document says which token a route needs; `check` does the work.
_API_BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", description="An API token.")
_INTERNAL_BEARER = HTTPBearer(
    auto_error=False, scheme_name="internal", description="The internal service-to-service token."
)


async def require_token(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_API_BEARER)] = None
) -> None:
    verifier: TokenVerifier = request.app.state.api_tokens
    verifier.check(request)


async def require_internal_token(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_INTERNAL_BEARER)] = None
) -> None:
    verifier: TokenVerifier = request.app.state.internal_tokens
    verifier.check(request)
