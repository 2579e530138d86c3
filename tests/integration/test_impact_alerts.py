"""impact-svc on its own: lineage imports (dbt, OpenLineage), alert delivery with retries, a failing
webhook, deduplication of a drift seen twice, and the alert rules' boundary."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from tests.fixtures.drift import RecordingBus, webhook_receiver
from tidemark.api.app import build_app
from tidemark.db import utcnow
from tidemark.events import (
    DestinationSpec,
    Envelope,
    PipelineChanged,
    PipelineSpec,
    SchemaChange,
    SchemaDriftDetected,
    StreamSpec,
)
from tidemark.ids import new_id
from tidemark.settings import AuthSettings, DatabaseSettings
from tidemark_impact.app import DEFINITION as IMPACT
from tidemark_impact.models import Alert
from tidemark_impact.settings import ImpactSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.integration

TOKEN = "impact-token"
Impact = tuple[httpx.AsyncClient, RecordingBus, FastAPI]
CONNECTION = uuid.uuid4()
PIPELINE = uuid.uuid4()


@pytest.fixture
async def impact(tmp_path: Path) -> AsyncIterator[Impact]:
    bus = RecordingBus()
    settings = ImpactSettings(database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/impact.db"),
                              auth=AuthSettings(tokens=[SecretStr(TOKEN)]), bus="memory", outbox_poll_seconds=0.1,
                              delivery_attempts=3, delivery_backoff_seconds=0.05, delivery_poll_seconds=0.1)
    app = build_app([(IMPACT, settings)], title="impact", bus=bus, migrate=True)
    async with running(app, TOKEN) as client:
        await bus.publish(PipelineChanged.topic, Envelope.wrap(PipelineChanged(
            pipeline_id=PIPELINE, change="created", status="active",
            pipeline=PipelineSpec(pipeline_id=PIPELINE, name="shop", connection_id=CONNECTION,
                                  streams=[StreamSpec(name="public.orders", columns=["id", "amount"])],
                                  destination=DestinationSpec(namespace="raw"))), source="test"))
        yield client, bus, app


def drift(column: str = "amount") -> SchemaDriftDetected:
    return SchemaDriftDetected(connection_id=CONNECTION, snapshot_id=uuid.uuid4(), drift_id=uuid.uuid4(),
                               changes=[SchemaChange(kind="column_removed", stream="public.orders", column=column,
                                                     breaking=True)])


async def until(check: Callable[[], Awaitable[bool]], within: float = 5) -> None:
    """Poll an HTTP API (it has no event to wait on) until ``check`` holds."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_dbt_manifest_models_and_exposures_become_downstreams_of_the_sources_they_read(
    impact: Impact
) -> None:
    client, _, _ = impact
    manifest = {
        "sources": {"source.shop.raw.orders": {"name": "orders", "schema": "raw", "identifier": "orders"}},
        "nodes": {
            "model.shop.stg_orders": {"resource_type": "model", "name": "stg_orders",
                                      "depends_on": {"nodes": ["source.shop.raw.orders"]}},
            "model.shop.revenue": {"resource_type": "model", "name": "revenue",
                                   "depends_on": {"nodes": ["model.shop.stg_orders"]}},
            "test.shop.not_null": {"resource_type": "test", "name": "not_null",
                                   "depends_on": {"nodes": ["source.shop.raw.orders"]}},
        },
        "exposures": {"exposure.shop.board": {"name": "board", "label": "Board KPIs", "type": "dashboard",
                                              "url": "https://bi.example/board", "owner": {"email": "a@b.c"},
                                              "depends_on": {"nodes": ["model.shop.revenue"]}}},
    }
    first = await client.post("/v1/lineage/dbt", json=manifest)
    assert first.status_code == 200, first.text
    again = await client.post("/v1/lineage/dbt", json=manifest)  # re-importing updates, never duplicates
    found = {d["name"]: d for d in again.json()["imported"]}
    assert set(found) == {"stg_orders", "revenue", "Board KPIs"}
    assert {d["table"] for d in found.values()} == {"raw.orders"}
    assert (found["Board KPIs"]["kind"], found["Board KPIs"]["url"], found["Board KPIs"]["owner"]) == (
        "dashboard", "https://bi.example/board", "a@b.c")
    assert len((await client.get("/v1/downstreams")).json()) == 3


async def test_an_openlineage_job_reading_a_tidemark_table_becomes_a_downstream_with_its_columns(
    impact: Impact
) -> None:
    client, _, _ = impact
    await until(lambda: _has_pipelines(client))
    event = {
        "eventType": "COMPLETE", "eventTime": "2026-12-05T10:00:00Z", "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "airflow", "name": "daily_revenue"},
        "inputs": [{"namespace": "iceberg://warehouse", "name": "raw.orders"},
                   {"namespace": "postgres://other", "name": "crm.accounts"}],
        "outputs": [{"namespace": "iceberg://warehouse", "name": "marts.revenue", "facets": {"columnLineage": {
            "fields": {"total": {"inputFields": [
                {"namespace": "iceberg://warehouse", "name": "raw.orders", "field": "amount"}]}}}}}],
    }
    imported = (await client.post("/v1/lineage", json=event)).json()["imported"]
    assert [(d["name"], d["kind"], d["table"], d["columns"], d["origin"]) for d in imported] == [
        ("airflow/daily_revenue", "job", "raw.orders", ["amount"], "openlineage")]
    bad = await client.post("/v1/lineage", json={"job": {"namespace": "x"}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "job.name"


async def test_a_drift_alerts_each_rule_once_with_retries_and_a_failing_webhook_blocks_nothing(
    impact: Impact
) -> None:
    client, bus, _ = impact
    await until(lambda: _has_pipelines(client))
    with webhook_receiver(status=[503, 204]) as flaky, webhook_receiver(status=[204]) as slack, \
            webhook_receiver(status=[500]) as broken:
        for name, url, channel in (("flaky", flaky.url, "webhook"), ("slack", slack.url, "slack"),
                                   ("broken", broken.url, "webhook")):
            created = await client.post("/v1/alert-rules", json={"name": name, "url": url, "channel": channel,
                                                                 "min_severity": "critical"})
            assert created.status_code == 201, created.text
        event = drift()
        envelope = Envelope.wrap(event, source="schema-svc")
        await bus.publish(event.topic, envelope)
        await bus.publish(event.topic, envelope)  # redelivered: still one alert per rule

        async def settled() -> bool:
            alerts = (await client.get("/v1/alerts", params={"drift_id": str(event.drift_id)})).json()
            return len(alerts) == 3 and all(a["delivery"] in ("sent", "failed") for a in alerts)

        await until(settled)
        alerts = {a["rule"]: a for a in (await client.get("/v1/alerts")).json()}
        assert (alerts["flaky"]["delivery"], alerts["flaky"]["attempts"]) == ("sent", 2)
        assert (alerts["broken"]["delivery"], alerts["broken"]["attempts"]) == ("failed", 3)
        assert "500" in alerts["broken"]["last_error"]
        assert len(flaky.received) == 2  # the 503, then the delivery
        assert flaky.received[-1]["severity"] == "critical"  # the pipeline loads `amount`
        [message] = slack.received
        assert "column_removed: public.orders.amount (breaking)" in message["text"]
        assert len([e for e in bus.carried if e.type == "alert.sent"]) == 2

        # A later drift is analysed and alerted while the broken webhook keeps failing.
        later = drift("id")
        await bus.publish(later.topic, Envelope.wrap(later, source="schema-svc"))
        await until(lambda: _delivered(client, later.drift_id))


async def test_alert_rules_are_checked_at_the_boundary(impact: Impact) -> None:
    client, _, _ = impact
    response = await client.post("/v1/alert-rules", json={"name": "x", "url": "not a url", "min_severity": "loud"})
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"url", "min_severity"}
    missing = await client.post(f"/v1/alerts/{uuid.uuid4()}/ack", json={})
    assert missing.status_code == 404


async def _has_pipelines(client: httpx.AsyncClient) -> bool:
    return bool((await client.get("/v1/impact/pipelines")).json())


async def _delivered(client: httpx.AsyncClient, drift_id: uuid.UUID | None) -> bool:
    alerts = (await client.get("/v1/alerts", params={"drift_id": str(drift_id)})).json()
    return any(a["delivery"] == "sent" for a in alerts)


async def test_an_alert_whose_sender_died_mid_delivery_is_sent_again(impact: Impact) -> None:
    client, _, app = impact
    with webhook_receiver() as receiver:
        rule = (await client.post("/v1/alert-rules", json={"name": "hook", "url": receiver.url})).json()
        runtime = app.state.runtimes["impact"]
        async with runtime.transaction() as session:
            for age in (timedelta(hours=1), timedelta(seconds=5)):  # a dead sender's claim; a live one's
                session.add(Alert(id=new_id(), rule="hook", severity="warning", title=f"claimed {age} ago",
                                  subject_id="x", channel="webhook", rule_id=uuid.UUID(rule["id"]),
                                  delivery="sending", attempts=0, claimed_at=utcnow() - age))
        runtime.state.wakeup.set()

        async def resent() -> bool:
            return bool(receiver.received)

        await until(resent)
        await asyncio.sleep(0.5)
        assert [r["title"] for r in receiver.received] == ["claimed 1:00:00 ago"]
