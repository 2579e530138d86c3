"""The orchestrator on PostgreSQL and a real broker: no event lost in an outage, none applied twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pydantic import SecretStr

from tests.fixtures.infra import kafka_settings
from tidemark.api.app import build_app
from tidemark.bus.kafka import KafkaBus
from tidemark.events import Envelope, RunError, RunFinished, RunRequested, RunStatus, Topic
from tidemark.service import ServiceRuntime
from tidemark.settings import AuthSettings, DatabaseSettings, KafkaSettings
from tidemark_cli.localbroker import LocalBroker
from tidemark_orchestrator.app import DEFINITION
from tidemark_orchestrator.settings import OrchestratorSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.integration
TOKEN = "integration-token"
WAIT = 30.0


def orchestrator_app(database_url: str, kafka: KafkaSettings) -> FastAPI:
    settings = OrchestratorSettings(
        database=DatabaseSettings(url=database_url),
        kafka=kafka,
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        outbox_poll_seconds=0.2,
    )
    return build_app([(DEFINITION, settings)], title="orchestrator", migrate=True)


def runtime(app: FastAPI) -> ServiceRuntime:
    rt: ServiceRuntime = app.state.runtimes["orchestrator"]
    return rt


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(int(WAIT / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


async def create_pipeline_and_run(client: httpx.AsyncClient) -> tuple[str, str]:
    # The outbox is the subject here, not the source: the pipeline is saved unvalidated.
    created = await client.post("/v1/pipelines", params={"validate": "false"}, json={
        "name": f"orders-{uuid.uuid4().hex[:6]}",
        "connection_id": str(uuid.uuid4()),
        "streams": [{"name": "main.orders"}],
        "retries": {"max_attempts": 1},  # a failed run stays the pipeline's only run
    })
    assert created.status_code == 201, created.text
    pipeline_id = created.json()["id"]
    run = await client.post(f"/v1/pipelines/{pipeline_id}/runs")
    assert run.status_code == 202, run.text
    return pipeline_id, run.json()["run_id"]


async def outbox_rows(app: FastAPI) -> list[tuple[str, Any]]:
    """(event type, published_at) of every outbox row, oldest first."""
    rt = runtime(app)
    table = DEFINITION.tables.outbox
    async with rt.sessions() as session:
        rows = (await session.execute(
            sa.select(table.c.envelope, table.c.published_at).order_by(table.c.seq))).all()
    return [(Envelope.model_validate_json(raw).type, published) for raw, published in rows]


@pytest.fixture
async def broker_down_app(
    private_broker: LocalBroker, pg_database: Callable[[], str], topic_prefix: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = orchestrator_app(pg_database(), kafka_settings(private_broker.bootstrap_servers, topic_prefix))
    async with running(app, TOKEN) as client:
        yield app, client


async def test_a_run_requested_while_the_broker_is_down_is_published_when_it_returns(
    broker_down_app: tuple[FastAPI, httpx.AsyncClient], private_broker: LocalBroker, topic_prefix: str
) -> None:
    app, client = broker_down_app
    private_broker.stop()

    pipeline_id, run_id = await create_pipeline_and_run(client)
    # Give the relay time to try (and fail) a few times.
    await asyncio.sleep(1.0)
    assert await outbox_rows(app) == [("pipeline.changed", None), ("run.queued", None), ("run.requested", None)]

    private_broker.start()  # same port, empty: the topics are gone too
    await eventually(lambda: _published(app), "the relay to publish after the broker returned")

    topic = Topic.RUNS.qualified(topic_prefix)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=private_broker.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        queued = await asyncio.wait_for(consumer.getone(), timeout=WAIT)
        message = await asyncio.wait_for(consumer.getone(), timeout=WAIT)
    finally:
        await consumer.stop()
    assert Envelope.from_bytes(queued.value).type == "run.queued"  # in the order they were stored
    envelope = Envelope.from_bytes(message.value)
    assert envelope.type == "run.requested"
    assert str(envelope.payload_as(RunRequested).run_id) == run_id
    assert message.key == run_id.encode()

    # The orchestrator's own consumer found its way back too: a run.finished still applies.
    ingest = KafkaBus(kafka_settings(private_broker.bootstrap_servers, topic_prefix), client_id="test-ingest")
    try:
        await ingest.publish(Topic.RUNS, Envelope.wrap(RunFinished(
            run_id=uuid.UUID(run_id), pipeline_id=uuid.UUID(pipeline_id), status=RunStatus.SUCCEEDED,
        ), source="ingest-svc"))
    finally:
        await ingest.stop()

    async def succeeded() -> bool:
        [row] = (await client.get(f"/v1/pipelines/{pipeline_id}/runs")).json()
        return bool(row["status"] == "succeeded")

    await eventually(succeeded, "the orchestrator to consume after the outage")


async def _published(app: FastAPI) -> bool:
    return await runtime(app).relay.pending() == 0


@pytest.fixture
async def orchestrator(
    kafka_bootstrap: str, pg_database: Callable[[], str], topic_prefix: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = orchestrator_app(pg_database(), kafka_settings(kafka_bootstrap, topic_prefix))
    async with running(app, TOKEN) as client:
        yield app, client


@pytest.fixture
async def ingest_bus(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[KafkaBus]:
    """Publishes as ingest-svc would."""
    bus = KafkaBus(kafka_settings(kafka_bootstrap, topic_prefix), client_id="test-ingest")
    await bus.start()
    yield bus
    await bus.stop()


def duplicates_seen(topic_prefix: str) -> float:
    group = f"{topic_prefix}-orchestrator.runs"  # consumer groups carry the installation's prefix
    value = REGISTRY.get_sample_value(
        "tidemark_events_consumed_total", {"group": group, "type": "run.finished", "outcome": "duplicate"}
    )
    return value or 0.0


async def test_a_redelivered_run_finished_changes_the_run_once(
    orchestrator: tuple[FastAPI, httpx.AsyncClient], ingest_bus: KafkaBus, topic_prefix: str
) -> None:
    app, client = orchestrator
    pipeline_id, run_id = await create_pipeline_and_run(client)

    def duplicates() -> float:
        return duplicates_seen(topic_prefix)

    async def run_row() -> dict[str, Any]:
        response = await client.get(f"/v1/pipelines/{pipeline_id}/runs")
        [row] = response.json()
        assert isinstance(row, dict)
        return row

    async def inbox_count(event_id: uuid.UUID) -> int:
        inbox = DEFINITION.tables.inbox
        async with runtime(app).sessions() as session:
            count = await session.scalar(
                sa.select(sa.func.count()).select_from(inbox).where(inbox.c.event_id == event_id))
        return int(count or 0)

    def finished(status: RunStatus, error: str | None = None) -> Envelope:
        payload = RunFinished(run_id=uuid.UUID(run_id), pipeline_id=uuid.UUID(pipeline_id), status=status,
                              error=RunError(message=error, kind="terminal") if error else None)
        return Envelope.wrap(payload, source="ingest-svc")

    failed = finished(RunStatus.FAILED, "source refused the connection")
    baseline = duplicates()

    await ingest_bus.publish(Topic.RUNS, failed)
    await ingest_bus.publish(Topic.RUNS, failed)
    await eventually(lambda: _at_least(duplicates, baseline + 1), "the second delivery to be handled")
    row = await run_row()
    assert row["status"] == "failed"
    assert await inbox_count(failed.id) == 1

    # A later, different ending for the same run is consumed, but the first ending stands: nothing
    # moves a run out of a terminal state (tidemark.events.may_move)...
    succeeded = finished(RunStatus.SUCCEEDED)
    await ingest_bus.publish(Topic.RUNS, succeeded)

    async def consumed() -> bool:
        return await inbox_count(succeeded.id) == 1

    await eventually(consumed, "the later event to be consumed")
    assert (await run_row())["status"] == "failed"

    # ...and a stale redelivery of the first one is caught as a duplicate.
    await ingest_bus.publish(Topic.RUNS, failed)
    await eventually(lambda: _at_least(duplicates, baseline + 2), "the stale redelivery to be handled")
    assert (await run_row())["status"] == "failed"
    assert await inbox_count(failed.id) == 1


async def _at_least(value: Callable[[], float], target: float) -> bool:
    return value() >= target
