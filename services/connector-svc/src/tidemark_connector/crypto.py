"""Encryption of connection secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from settings; outside production it may instead live in
``<home>/secret.key``, created on first start-up with mode 0600.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from tidemark.errors import ConfigError
from tidemark_connector.settings import ConnectorSettings

log = logging.getLogger(__name__)

KEY_FILE = "secret.key"


class SecretBox:
    """Turns a dict of secret values into an opaque token and back."""

    def __init__(self, key: SecretStr, previous: list[SecretStr] | None = None) -> None:
        keys = [key, *(previous or [])]
        fernets: list[Fernet] = []
        for position, k in enumerate(keys):
            name = "secret_key" if position == 0 else f"previous_secret_keys[{position - 1}]"
            try:
                fernets.append(Fernet(k.get_secret_value().strip().encode()))
            except ValueError as exc:
                raise ConfigError(
                    f"{name}: not a Fernet key (expected 32 url-safe base64-encoded bytes)", field=name
                ) from exc
        self._current = fernets[0]
        self._fernet = MultiFernet(fernets)
        self.rotating = len(fernets) > 1
        """Older keys are configured: stored secrets may still need re-encrypting."""

    def encrypt(self, values: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        try:
            plain = self._fernet.decrypt(token.encode())
        except InvalidToken as exc:
            raise ConfigError(
                "stored connection secrets cannot be decrypted with the configured secret_key; "
                "was the key changed? Put the old key in previous_secret_keys to rotate (docs/deploy.md)",
                field="secret_key",
            ) from exc
        values: dict[str, Any] = json.loads(plain)
        return values

    def is_current(self, token: str) -> bool:
        """Whether ``token`` was encrypted with ``secret_key`` (not with an older key)."""
        try:
            self._current.decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted with ``secret_key``; :class:`InvalidToken` when no configured key reads it."""
        return self._fernet.rotate(token.encode()).decode()


def load_secret_key(settings: ConnectorSettings) -> SecretStr:
    """The configured key, or the one in ``<home>/secret.key`` (created when missing).

    Called at start-up, never at import. Production always has an explicit key
    (settings validation refuses to start without one).
    """
    if settings.secret_key is not None:
        return settings.secret_key
    path = settings.platform.home / KEY_FILE
    try:
        return _read_or_create(path)
    except OSError as exc:
        raise ConfigError(
            f"secret_key: unset, and {path} cannot be read or created: {exc.strerror}", field="secret_key"
        ) from exc


def _read_or_create(path: Path) -> SecretStr:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        key = Fernet.generate_key()
        # Write a private temp file, then link it into place: the link fails if another
        # process got there first, and nobody ever reads a half-written key.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret.key.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(key + b"\n")
            os.link(tmp, path)
            log.info("generated a new secret key in %s", path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; it should have mode 0600", path)
    return SecretStr(path.read_text().strip())
