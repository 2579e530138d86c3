"""KafkaBus reports its consumer group's lag per topic: messages published and not yet handled."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import REGISTRY

from tests.fixtures.infra import kafka_settings
from tidemark.bus.kafka import KafkaBus
from tidemark.events import Envelope, RunStarted, Topic

pytestmark = pytest.mark.integration


def lag(group: str) -> float | None:
    return REGISTRY.get_sample_value("tidemark_consumer_lag_messages", {"group": group, "topic": Topic.RUNS.value})


async def until(check: object, what: str, wait: float = 30.0) -> None:
    assert callable(check)
    for _ in range(int(wait / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


async def test_lag_counts_published_messages_until_the_group_handles_them(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = kafka_settings(kafka_bootstrap, topic_prefix)
    group = f"lag-{uuid.uuid4().hex[:6]}"
    handled: list[Envelope] = []
    release = asyncio.Event()

    async def slow(envelope: Envelope) -> None:
        await release.wait()
        handled.append(envelope)

    publisher = KafkaBus(settings, client_id="test-lag-publisher")
    consumer = KafkaBus(settings, client_id="test-lag-consumer")
    consumer.subscribe(group, [Topic.RUNS], slow)
    try:
        # One run, so one key and one partition: the group's first fetch sees all four.
        run_id = uuid.uuid4()
        for _ in range(4):
            payload = RunStarted(run_id=run_id, pipeline_id=uuid.uuid4(), launcher="local", worker_ref="1")
            await publisher.publish(Topic.RUNS, Envelope.wrap(payload, source="test"))
        await consumer.start()
        # The handler holds the first message: all four count as lag.
        await until(lambda: lag(group) == 4, "the lag of four unhandled messages")
        release.set()
        await until(lambda: len(handled) == 4, "the group to handle the messages")
        await until(lambda: lag(group) == 0, "the lag to fall back to zero")
    finally:
        await consumer.stop()
        await publisher.stop()
