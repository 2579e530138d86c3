"""API tokens: the configured ones (settings and the mounted tokens file) and the ones the API issued
(each service's projection of ``token.*`` events). Only SHA-256 digests are kept in memory.

A configured entry is ``name:scope:token`` (or ``name:scope:sha256:<hex digest>``), or a bare token as
before scopes existed, which is ``admin`` so existing installations keep working."""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from tidemark.access.scopes import Scope
from tidemark.errors import ConfigError
from tidemark.settings import AuthSettings, PlatformSettings

log = logging.getLogger(__name__)

LEGACY_SCOPE = Scope.ADMIN
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the token's name and scope (never its value)."""

    name: str
    scope: Scope
    source: str  # "config" or "api"
    token_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ConfiguredToken:
    name: str
    scope: Scope
    digest: str
    scoped: bool  # False: a bare legacy entry, given LEGACY_SCOPE


@dataclass(frozen=True)
class IssuedToken:
    """A token the API created, as a service's projection knows it."""

    token_id: uuid.UUID
    name: str
    scope: Scope
    digest: str
    created_at: datetime
    revoked_at: datetime | None


class IssuedTokens(Protocol):
    def get(self, token_digest: str) -> IssuedToken | None: ...

    def learn(self, token: IssuedToken) -> None: ...


def parse_token_entry(raw: str, where: str, *, hashed: bool = False) -> ConfiguredToken:
    """One configured entry. ``where`` names it in errors and is the name of a bare entry; no error
    message ever holds the entry's value."""
    text = raw.strip()
    parts = text.split(":", 2)
    if len(parts) == 3 and NAME.match(parts[0]):
        name, scope_text, value = parts
        if scope_text not in Scope.__members__.values():
            raise ConfigError(f"{where}: unknown scope {scope_text[:16]!r} for token {name!r}; "
                              f"scopes are {', '.join(Scope)}")
        scope, scoped = Scope(scope_text), True
    else:
        name, scope, value, scoped = where, LEGACY_SCOPE, text, False
    if value.startswith("sha256:"):
        hashed, value = True, value.removeprefix("sha256:")
    if not value:
        raise ConfigError(f"{where}: token {name!r} has an empty value")
    if hashed and not HEX_DIGEST.match(value):
        raise ConfigError(f"{where}: token {name!r} is not a SHA-256 hex digest")
    return ConfiguredToken(name, scope, value.lower() if hashed else digest(value), scoped)


def _fingerprint(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"auth.tokens_file: cannot read {path}: {exc.strerror}") from exc


def read_tokens_file(path: Path) -> list[ConfiguredToken]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"auth.tokens_file: cannot read {path}: {exc.strerror}") from exc
    return [parse_token_entry(line, f"{path.name}:{number}")
            for number, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]


def configured_tokens(auth: AuthSettings, platform: PlatformSettings) -> list[ConfiguredToken]:
    """The tokens in settings (not the tokens file: :class:`TokenRegistry` reads and re-reads it)."""
    found = [parse_token_entry(t.get_secret_value(), f"auth.tokens[{i}]") for i, t in enumerate(auth.tokens)]
    found += [parse_token_entry(h, f"auth.token_hashes[{i}]", hashed=True) for i, h in enumerate(auth.token_hashes)]
    if platform.api_token is not None:
        # The embedded platform's own token (`tidemark up`, the CLI, the demo): it runs everything.
        found.append(ConfiguredToken("platform.api_token", Scope.ADMIN, digest(platform.api_token.get_secret_value()),
                                     scoped=True))
    return found


class TokenRegistry:
    """Every token an app accepts on /v1 routes and pages: configured ones, and those in the projections
    of issued tokens its services keep (several in the embedded platform, one per service otherwise).

    Tokens files are read at start-up (an unreadable or invalid one stops the service) and again by
    :meth:`reload_files`, so an edited Kubernetes Secret takes effect without a restart."""

    def __init__(self, configured: Iterable[ConfiguredToken] = (), files: Iterable[Path] = ()) -> None:
        self._fixed = list(configured)
        self._files: dict[Path, tuple[str, list[ConfiguredToken]]] = {}
        for path in files:
            self._files[path] = (_fingerprint(path), read_tokens_file(path))
        self._configured: dict[str, ConfiguredToken] = {}
        self._rebuild()
        self._issued: list[IssuedTokens] = []

    def _rebuild(self) -> None:
        merged: dict[str, ConfiguredToken] = {}
        for entry in [*self._fixed, *(e for _, entries in self._files.values() for e in entries)]:
            merged.setdefault(entry.digest, entry)
        self._configured = merged  # one assignment: a request sees the old set or the new one

    @classmethod
    def from_settings(cls, settings: Sequence[tuple[AuthSettings, PlatformSettings]]) -> TokenRegistry:
        entries = [e for auth, platform in settings for e in configured_tokens(auth, platform)]
        files = list(dict.fromkeys(auth.tokens_file for auth, _ in settings if auth.tokens_file is not None))
        registry = cls(entries, files)
        unscoped = sorted({e.name for e in registry.configured if not e.scoped})
        if unscoped:
            log.warning("tokens without a scope are admin tokens; give each a scope (name:scope:token)",
                        extra={"fields": {"tokens": ", ".join(unscoped)}})
        return registry

    def reload_files(self) -> None:
        """Read the tokens files again (blocking: call it in a thread). A file that changed replaces its
        tokens; one that cannot be read or holds an invalid entry keeps the tokens it had."""
        changed = False
        for path, (seen, _) in list(self._files.items()):
            try:
                fingerprint = _fingerprint(path)
                if fingerprint == seen:
                    continue
                entries = read_tokens_file(path)
            except ConfigError as exc:
                log.error("tokens file not reloaded, the tokens it had stay: %s", exc.message)
                continue
            self._files[path] = (fingerprint, entries)
            changed = True
            log.info("tokens file reloaded", extra={"fields": {"file": str(path), "tokens": len(entries)}})
        if changed:
            self._rebuild()

    def attach(self, issued: IssuedTokens) -> None:
        self._issued.append(issued)

    def learn(self, token: IssuedToken) -> None:
        """What the issuing service just committed: this process acts on it without waiting for its event."""
        for source in self._issued:
            source.learn(token)

    @property
    def configured(self) -> list[ConfiguredToken]:
        return list(self._configured.values())

    def knows_digest(self, token_digest: str) -> bool:
        return token_digest in self._configured

    def authenticate(self, token: str) -> Principal | None:
        # A lookup by digest: timing can at most reveal something about a digest, never about a token.
        token_digest = digest(token)
        entry = self._configured.get(token_digest)
        if entry is not None:
            return Principal(entry.name, entry.scope, "config")
        found = [t for source in self._issued if (t := source.get(token_digest)) is not None]
        # Revocation is final: one projection that has seen it is enough (the embedded platform has several).
        if not found or any(t.revoked_at is not None for t in found):
            return None
        issued = found[0]
        return Principal(issued.name, issued.scope, "api", issued.token_id)
