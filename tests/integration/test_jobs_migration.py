"""Runs stored before jobs-svc's 0002 keep their place: queued times, list order, totals and pipeline
health are filled from them on PostgreSQL and SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tidemark.db import JSONType, UTCDateTime, create_engine
from tidemark.db.migrate import upgrade
from tidemark.events import TRIGGERS, RunStatus
from tidemark.settings import DatabaseSettings

pytestmark = pytest.mark.integration
# run_views as revision 0001 made it (the columns this test fills).
BEFORE = sa.table(
    "run_views", sa.column("run_id", sa.Uuid), sa.column("pipeline_id", sa.Uuid), sa.column("status", sa.String),
    sa.column("trigger", sa.String), sa.column("attempt", sa.Integer), sa.column("requested_at", UTCDateTime),
    sa.column("finished_at", UTCDateTime), sa.column("scheduled_for", UTCDateTime),
    sa.column("rows_read", sa.BigInteger), sa.column("rows_written", sa.BigInteger),
    sa.column("bytes_written", sa.BigInteger), sa.column("streams", JSONType), sa.column("updated_at", UTCDateTime),
)
MIGRATIONS = "tidemark_jobs:migrations"


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, pg_database: Callable[[], str], tmp_path: Path) -> str:
    return pg_database() if request.param == "postgresql" else f"sqlite+aiosqlite:///{tmp_path}/jobs.db"


async def test_runs_from_before_get_their_order_totals_and_health(database_url: str) -> None:
    engine = create_engine(DatabaseSettings(url=database_url))
    pipeline, old, new, upcoming = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        await upgrade(engine, MIGRATIONS, "0001")
        at = datetime(2026, 12, 1, 10, tzinfo=UTC)
        rows = [
            {"run_id": old, "status": "succeeded", "trigger": "manual", "requested_at": at,
             "finished_at": at + timedelta(minutes=5), "scheduled_for": None},
            {"run_id": new, "status": "failed", "trigger": "schedule", "requested_at": at + timedelta(days=1),
             "finished_at": at + timedelta(days=1, minutes=5), "scheduled_for": None},
            {"run_id": upcoming, "status": "scheduled", "trigger": "schedule", "requested_at": None,
             "finished_at": None, "scheduled_for": at + timedelta(days=8)},
        ]
        async with engine.begin() as conn:
            await conn.execute(sa.insert(BEFORE), [
                {**r, "pipeline_id": pipeline, "attempt": 1, "rows_read": 0, "rows_written": 0, "bytes_written": 0,
                 "streams": [], "updated_at": at + timedelta(days=2)} for r in rows])
        await upgrade(engine, MIGRATIONS)
        async with engine.connect() as conn:
            order = (await conn.execute(sa.text("SELECT status FROM run_views ORDER BY list_order DESC"))).scalars()
            assert list(order) == ["failed", "succeeded", "scheduled"]  # newest first, upcoming after
            totals = dict((await conn.execute(sa.text(
                "SELECT status || '/' || \"trigger\", runs FROM run_totals WHERE runs > 0"))).all())
            assert totals == {"succeeded/manual": 1, "failed/schedule": 1, "scheduled/schedule": 1}
            # A row for every (status, trigger or '' for not known yet): a total is an UPDATE of a row.
            assert (await conn.execute(sa.text("SELECT count(*) FROM run_totals"))).scalar() == \
                len(RunStatus) * (len(TRIGGERS) + 1)
            health = (await conn.execute(sa.text("SELECT last_status FROM pipeline_health"))).scalars().all()
            assert health == ["failed"]
    finally:
        await engine.dispose()
