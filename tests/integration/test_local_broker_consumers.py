"""The embedded platform on its own broker starts consuming within a second or two of start-up."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from tidemark.bus.kafka import KafkaBus
from tidemark.events import Envelope, RunStarted, Topic
from tidemark_cli.embedded import prepare
from tidemark_cli.localbroker import LocalBroker

pytestmark = pytest.mark.integration


async def test_embedded_consumers_on_the_local_broker_get_an_event_within_three_seconds(
    private_broker: LocalBroker, tmp_path: Path,
) -> None:
    # tansu holds a JoinGroup for about half the session timeout: with the 10 s session the
    # embedded platform used before, nothing was consumed for 5 s (the demo run waited that long).
    kafka = prepare(tmp_path, "127.0.0.1", 8000, private_broker.bootstrap_servers, local_broker=True).kafka
    envelope = Envelope.wrap(RunStarted(run_id=uuid.uuid4(), pipeline_id=uuid.uuid4(), launcher="local",
                                        worker_ref="1"), source="test")
    publisher = KafkaBus(kafka, client_id="test-publisher")
    await publisher.publish(Topic.RUNS, envelope)  # already waiting when the consumer starts, like a demo run

    received: asyncio.Queue[Envelope] = asyncio.Queue()
    consumer = KafkaBus(kafka, client_id="test-consumer")
    consumer.subscribe("tidemark-test.join", [Topic.RUNS], received.put)
    started = time.monotonic()
    await consumer.start()
    try:
        got = await asyncio.wait_for(received.get(), timeout=30)
        elapsed = time.monotonic() - started
    finally:
        await consumer.stop()
        await publisher.stop()
    assert got.id == envelope.id
    assert elapsed < 3.0, f"the consumer group took {elapsed:.1f} s to get its first event"
