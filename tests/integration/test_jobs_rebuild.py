"""The read model can be rebuilt: the runs topic replayed into an empty database gives the same view
as the live consumer built from the same events (PostgreSQL, the real broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from tests.fixtures.infra import kafka_settings
from tests.fixtures.jobs import TOKEN, history
from tidemark.api.app import build_app
from tidemark.bus.kafka import KafkaBus
from tidemark.db import create_engine
from tidemark.errors import ConfigError
from tidemark.events import Envelope, Topic
from tidemark.settings import AuthSettings, DatabaseSettings
from tidemark_jobs.app import DEFINITION
from tidemark_jobs.models import Base
from tidemark_jobs.rebuild import rebuild, rebuild_from_kafka
from tidemark_jobs.settings import JobsSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.integration
VIEW_TABLES = ("run_views", "run_transitions", "run_totals", "run_logs")


async def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the read model, in a stable order, without the transitions' insertion ids."""
    engine = create_engine(DatabaseSettings(url=url))
    try:
        async with engine.connect() as conn:
            found = {}
            for name in VIEW_TABLES:
                table = Base.metadata.tables[name]
                columns = [c for c in table.columns if c.name != "id"]
                rows = (await conn.execute(sa.select(*columns))).all()
                found[name] = sorted((tuple(r) for r in rows), key=repr)
            return found
    finally:
        await engine.dispose()


async def processed(url: str) -> int:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(sa.text("SELECT count(*) FROM processed_events")) or 0)
    finally:
        await engine.dispose()


async def api_view(client: httpx.AsyncClient) -> list[Any]:
    listed = (await client.get("/v1/runs", params={"limit": 500})).json()
    details = [(await client.get(f"/v1/runs/{r['run_id']}")).json() for r in listed["items"]]
    logs = [(await client.get(f"/v1/runs/{r['run_id']}/logs")).json() for r in listed["items"]]
    return [listed, details, logs]


async def test_the_rebuilt_read_model_equals_the_live_one(
    kafka_bootstrap: str, topic_prefix: str, pg_database: Callable[[], str], tmp_path: Path,
) -> None:
    kafka = kafka_settings(kafka_bootstrap, topic_prefix)
    live = JobsSettings(database=DatabaseSettings(url=pg_database()), kafka=kafka,
                        auth=AuthSettings(tokens=[SecretStr(TOKEN)]))
    events = history(datetime(2026, 12, 5, 8, 0, tzinfo=UTC))
    publisher = KafkaBus(kafka, client_id="test-publisher")
    async with running(build_app([(DEFINITION, live)], title="t", migrate=True), TOKEN) as client:
        try:
            envelopes = [Envelope.wrap(p, source="test").model_copy(update={"occurred_at": at}) for p, at in events]
            for envelope in envelopes:
                await publisher.publish(Topic.RUNS, envelope)
            await publisher.publish(Topic.RUNS, envelopes[3])  # a redelivery, as Kafka may do
        finally:
            await publisher.stop()
        for _ in range(300):  # until the live consumer applied every event
            if await processed(live.database.url) == len(envelopes):
                break
            await asyncio.sleep(0.1)
        live_view = await api_view(client)
    assert sum(live_view[0]["totals"].values()) == len({e.subject for e in envelopes}) - 3  # 3 withdrawn

    rebuilt = JobsSettings(database=DatabaseSettings(url=pg_database()), kafka=kafka,
                           auth=AuthSettings(tokens=[SecretStr(TOKEN)]), bus="memory")
    applied = await rebuild_from_kafka(rebuilt)
    assert applied == len(events) + 1
    assert await dump(rebuilt.database.url) == await dump(live.database.url)
    async with running(build_app([(DEFINITION, rebuilt)], title="t", migrate=True), TOKEN) as client:
        assert await api_view(client) == live_view

    with pytest.raises(ConfigError, match="not empty"):  # never over a model that has runs
        await rebuild(rebuilt, _nothing())


async def _nothing() -> Any:
    return
    yield
