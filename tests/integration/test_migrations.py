"""Every service's migrations build its whole schema on PostgreSQL and on SQLite."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tidemark.db import create_engine
from tidemark.db.migrate import upgrade
from tidemark.service import ServiceDefinition
from tidemark.settings import DatabaseSettings

pytestmark = pytest.mark.integration

SERVICES = [
    "tidemark_connector",
    "tidemark_ingest",
    "tidemark_orchestrator",
    "tidemark_jobs",
    "tidemark_schema",
    "tidemark_impact",
]


def definition(package: str) -> ServiceDefinition:
    found = importlib.import_module(f"{package}.app").DEFINITION
    assert isinstance(found, ServiceDefinition)
    return found


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, pg_database: Callable[[], str], tmp_path: Path) -> str:
    if request.param == "postgresql":
        return pg_database()
    return f"sqlite+aiosqlite:///{tmp_path}/migrations.db"


def _inspect(connection: sa.Connection, metadata: sa.MetaData) -> tuple[dict[str, set[str]], list[Any]]:
    inspector = sa.inspect(connection)
    columns = {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}
    # What autogenerate would still want to change: models and migrations disagree.
    drift = compare_metadata(MigrationContext.configure(connection), metadata)
    return columns, drift


@pytest.mark.parametrize("package", SERVICES)
async def test_upgrade_to_head_creates_every_table_of_the_models(package: str, database_url: str) -> None:
    service = definition(package)
    engine = create_engine(DatabaseSettings(url=database_url))
    try:
        await upgrade(engine, service.migrations)
        await upgrade(engine, service.migrations)  # at head already: nothing to do, nothing fails
        async with engine.connect() as conn:
            columns, drift = await conn.run_sync(_inspect, service.metadata)
    finally:
        await engine.dispose()

    missing = sorted(set(service.metadata.tables) - set(columns))
    assert not missing, f"{package}: tables missing after upgrade: {missing}"
    for name, table in service.metadata.tables.items():
        assert {c.name for c in table.columns} <= columns[name], f"{package}.{name}: columns missing"
    assert {"outbox", "processed_events"} <= set(columns)
    assert drift == [], f"{package}: migrations and models differ: {drift}"
