"""Key rotation: every stored connection secret re-encrypted with ``secret_key``.

Safe to run twice and on several replicas at once: a row already under ``secret_key`` is left
alone, and each row is replaced only if it still holds the token that was read (compare and swap),
so a connection saved meanwhile (already under the key of the replica that saved it) is read again
rather than overwritten. No row is locked, no user change is recorded (``updated_at`` stays).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa
from cryptography.fernet import InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidemark.logs import fields
from tidemark_connector.crypto import SecretBox
from tidemark_connector.models import Connection

log = logging.getLogger(__name__)

# A row someone keeps saving under an older key (a replica not yet given the new one) is tried
# this often before it is left to the next rotation.
ATTEMPTS = 5


@dataclass
class RotationReport:
    connections: int = 0
    reencrypted: int = 0
    unreadable: list[uuid.UUID] = field(default_factory=list)
    """Connections no configured key decrypts (they need their secrets entered again)."""
    contended: list[uuid.UUID] = field(default_factory=list)
    """Connections re-saved under an older key during every attempt (run the rotation again)."""

    @property
    def complete(self) -> bool:
        return not self.unreadable and not self.contended

    def summary(self) -> str:
        text = f"{self.connections} connections: {self.reencrypted} re-encrypted with secret_key"
        if self.unreadable:
            text += f"; {len(self.unreadable)} unreadable with every configured key: " + ", ".join(
                map(str, self.unreadable))
        if self.contended:
            text += f"; {len(self.contended)} changed during rotation, run it again: " + ", ".join(
                map(str, self.contended))
        return text


async def rotate_secrets(sessions: async_sessionmaker[AsyncSession], box: SecretBox) -> RotationReport:
    """Re-encrypt every connection's secrets that are not under ``secret_key`` yet."""
    report = RotationReport()
    async with sessions() as session:
        ids = list(await session.scalars(sa.select(Connection.id).order_by(Connection.id)))
    report.connections = len(ids)
    for connection_id in ids:
        outcome = await _rotate_one(sessions, box, connection_id)
        if outcome == "reencrypted":
            report.reencrypted += 1
        elif outcome == "unreadable":
            report.unreadable.append(connection_id)
        elif outcome == "contended":
            report.contended.append(connection_id)
    return report


async def _rotate_one(sessions: async_sessionmaker[AsyncSession], box: SecretBox, connection_id: uuid.UUID) -> str:
    for _ in range(ATTEMPTS):
        async with sessions() as session, session.begin():
            token = await session.scalar(sa.select(Connection.secrets).where(Connection.id == connection_id))
            if token is None:
                return "gone"  # deleted meanwhile
            if box.is_current(token):
                return "current"
            try:
                rotated = box.rotate(token)
            except InvalidToken:
                log.error("connection secrets unreadable with every configured key",
                          extra=fields(connection_id=str(connection_id)))
                return "unreadable"
            swapped = await session.execute(
                sa.update(Connection)
                .where(Connection.id == connection_id, Connection.secrets == token)
                # Set explicitly so the column's onupdate does not fire: rotation is no change of the user's.
                .values(secrets=rotated, updated_at=Connection.updated_at)
                .execution_options(synchronize_session=False)
            )
            if swapped.rowcount == 1:  # type: ignore[attr-defined]
                return "reencrypted"
    return "contended"


async def rotate_at_start_up(sessions: async_sessionmaker[AsyncSession], box: SecretBox) -> None:
    """A background task of connector-svc while older keys are configured."""
    try:
        report = await rotate_secrets(sessions, box)
    except Exception:
        log.exception("key rotation failed; run `tidemark-connector-svc rotate-keys` to retry")
        return
    level = logging.INFO if report.complete else logging.WARNING
    log.log(level, "key rotation: %s", report.summary(),
            extra=fields(connections=report.connections, reencrypted=report.reencrypted,
                         unreadable=len(report.unreadable), contended=len(report.contended)))
