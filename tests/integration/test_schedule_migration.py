"""Migration 0002 turns a stored plain-string schedule into ``{"cron", "timezone": "UTC"}`` and back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Connection

from tidemark.db import UTCDateTime, create_engine
from tidemark.db.migrate import alembic_config, upgrade
from tidemark.settings import DatabaseSettings

pytestmark = pytest.mark.integration
MIGRATIONS = "tidemark_orchestrator:migrations"


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, pg_database: Callable[[], str], tmp_path: Path) -> str:
    if request.param == "postgresql":
        return pg_database()
    return f"sqlite+aiosqlite:///{tmp_path}/schedules.db"


def _downgrade(connection: Connection) -> None:
    cfg = alembic_config(MIGRATIONS)
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, "0001")


async def test_a_plain_cron_string_becomes_a_utc_schedule_and_back(database_url: str) -> None:
    engine = create_engine(DatabaseSettings(url=database_url))
    scheduled, manual = uuid.uuid4(), uuid.uuid4()
    # The table as revision 0001 made it (the models describe the head).
    pipelines = sa.table(
        "pipelines", sa.column("id", sa.Uuid()), sa.column("name", sa.String()), sa.column("connection_id", sa.Uuid()),
        sa.column("streams", sa.JSON()), sa.column("destination", sa.JSON()), sa.column("schedule", sa.String()),
        sa.column("status", sa.String()), sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    now = datetime(2026, 12, 1, tzinfo=UTC)
    try:
        await upgrade(engine, MIGRATIONS, "0001")
        async with engine.begin() as conn:
            for pid, name, schedule in ((scheduled, "nightly", "0 2 * * *"), (manual, "manual", None)):
                await conn.execute(pipelines.insert().values(
                    id=pid, name=name, connection_id=uuid.uuid4(), streams=[], destination={}, schedule=schedule,
                    status="active", created_at=now, updated_at=now))
        await upgrade(engine, MIGRATIONS)
        async with engine.connect() as conn:
            result = await conn.execute(sa.text("SELECT name, schedule FROM pipelines"))
            rows: dict[str, Any] = dict(result.all())
            catchup = (await conn.execute(sa.text("SELECT DISTINCT catchup FROM pipelines"))).scalars().all()
        as_json = {k: json.loads(v) if isinstance(v, str) else v for k, v in rows.items()}
        assert as_json == {"nightly": {"cron": "0 2 * * *", "timezone": "UTC"}, "manual": None}
        assert catchup == ["last"]

        async with engine.begin() as conn:
            await conn.run_sync(_downgrade)
        async with engine.connect() as conn:
            rows = dict((await conn.execute(sa.text("SELECT name, schedule FROM pipelines"))).all())
        assert rows == {"nightly": "0 2 * * *", "manual": None}
    finally:
        await engine.dispose()
