"""Run a service's Alembic migrations, from the CLI or from an embedded start-up step."""

from __future__ import annotations

import zlib

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config(script_location: str, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(engine: AsyncEngine, script_location: str, revision: str = "head") -> None:
    def _run(connection: Connection) -> None:
        cfg = alembic_config(script_location)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Replicas starting together would otherwise race to create the same tables; the lock
            # ends with this transaction, after which the next one finds the schema at head.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": zlib.crc32(script_location.encode())})
        await conn.run_sync(_run)
