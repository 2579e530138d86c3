"""KafkaBus against a real broker: delivery, commits, retries and poison messages."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from tests.fixtures.infra import kafka_settings
from tidemark.bus import Handler
from tidemark.bus.kafka import KafkaBus
from tidemark.errors import TransientError
from tidemark.events import Envelope, RunStarted, Topic
from tidemark.settings import KafkaSettings

pytestmark = pytest.mark.integration
WAIT = 30.0


def run_started(run_id: uuid.UUID | None = None) -> Envelope:
    payload = RunStarted(run_id=run_id or uuid.uuid4(), pipeline_id=uuid.uuid4(), launcher="local",
                         worker_ref="4242")
    return Envelope.wrap(payload, source="test")


class Inbox:
    """A handler that records what it was given."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Envelope] = asyncio.Queue()

    async def __call__(self, envelope: Envelope) -> None:
        await self.queue.put(envelope)

    async def next(self) -> Envelope:
        return await asyncio.wait_for(self.queue.get(), timeout=WAIT)


@contextlib.asynccontextmanager
async def consuming(settings: KafkaSettings, group: str, handler: Handler) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(settings, client_id=f"test-{group}")
    bus.subscribe(group, [Topic.RUNS], handler)
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


@pytest.fixture
async def publisher(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(kafka_settings(kafka_bootstrap, topic_prefix), client_id="test-publisher")
    await bus.start()
    yield bus
    await bus.stop()


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str) -> KafkaSettings:
    return kafka_settings(kafka_bootstrap, topic_prefix)


async def committed_offsets(settings: KafkaSettings, group: str) -> int:
    """Sum of the group's committed offsets on the runs topic (asked the way consumers ask)."""
    topic = Topic.RUNS.qualified(settings.topic_prefix)
    probe = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=group,
                             enable_auto_commit=False)
    await probe.start()
    try:
        partitions = probe.partitions_for_topic(topic) or set()
        offsets = [await probe.committed(TopicPartition(topic, p)) for p in partitions]
    finally:
        await probe.stop()
    return sum(o for o in offsets if o is not None)


async def test_published_envelope_reaches_a_consumer_group_unchanged(
    publisher: KafkaBus, settings: KafkaSettings, topic_prefix: str
) -> None:
    inbox = Inbox()
    sent = run_started()
    async with consuming(settings, f"{topic_prefix}.g", inbox):
        await publisher.publish(Topic.RUNS, sent)
        received = await inbox.next()
    assert received.id == sent.id
    assert received.type == "run.started"
    assert received.data == sent.data
    assert received == sent


async def test_a_new_consumer_in_the_group_starts_after_the_committed_events(
    publisher: KafkaBus, settings: KafkaSettings, topic_prefix: str
) -> None:
    group = f"{topic_prefix}.g"
    run_id = uuid.uuid4()  # one key: both events land in one partition, in order
    first, second = run_started(run_id), run_started(run_id)

    inbox_a = Inbox()
    async with consuming(settings, group, inbox_a):
        await publisher.publish(Topic.RUNS, first)
        assert (await inbox_a.next()).id == first.id
        for _ in range(int(WAIT / 0.2)):
            if await committed_offsets(settings, group) >= 1:
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the consumer never committed the handled event")

    await publisher.publish(Topic.RUNS, second)
    inbox_b = Inbox()
    async with consuming(settings, group, inbox_b):
        # Had `first` been redelivered it would come before `second` (same partition).
        assert (await inbox_b.next()).id == second.id
    assert inbox_b.queue.empty()


async def test_a_transient_failure_is_retried_until_the_event_is_handled(
    publisher: KafkaBus, settings: KafkaSettings, topic_prefix: str
) -> None:
    attempts: list[uuid.UUID] = []
    handled = Inbox()

    async def flaky(envelope: Envelope) -> None:
        attempts.append(envelope.id)
        if len(attempts) == 1:
            raise TransientError("database briefly unavailable")
        await handled(envelope)

    sent = run_started()
    async with consuming(settings, f"{topic_prefix}.g", flaky):
        await publisher.publish(Topic.RUNS, sent)
        assert (await handled.next()).id == sent.id
    assert attempts == [sent.id, sent.id]


async def test_an_undecodable_message_is_skipped_and_the_next_one_handled(
    publisher: KafkaBus, settings: KafkaSettings, topic_prefix: str
) -> None:
    group = f"{topic_prefix}.g"
    valid = run_started()
    await publisher.ensure_topics()
    raw = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False)
    await raw.start()
    try:
        # Same key as the valid event: same partition, so the poison message comes first.
        await raw.send_and_wait(publisher.topic_name(Topic.RUNS), b"\x00not an envelope",
                                key=valid.subject.encode())
    finally:
        await raw.stop()
    await publisher.publish(Topic.RUNS, valid)

    inbox = Inbox()
    async with consuming(settings, group, inbox):
        assert (await inbox.next()).id == valid.id
    assert inbox.queue.empty()
    skipped = REGISTRY.get_sample_value(
        "tidemark_events_consumed_total", {"group": group, "type": "undecodable", "outcome": "failed"}
    )
    assert skipped == 1.0


MEMBER = """
import asyncio, sys
from tidemark.bus.kafka import KafkaBus
from tidemark.events import Topic
from tidemark.settings import KafkaSettings

async def main() -> None:
    settings = KafkaSettings(bootstrap_servers=sys.argv[1], topic_prefix=sys.argv[2], session_timeout_ms=15_000)
    bus = KafkaBus(settings, client_id="doomed")

    async def handle(envelope) -> None:
        print("consuming", flush=True)

    bus.subscribe(settings.consumer_group("orchestrator", "runs"), [Topic.RUNS], handle)
    await bus.start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_an_installation_killed_on_a_shared_cluster_does_not_stall_another(
    kafka_bootstrap: str, publisher: KafkaBus, settings: KafkaSettings
) -> None:
    """Two installations (two prefixes) on one cluster run the same services. One is killed mid-flight; the
    other's consumers must not wait out the dead member's 15-second session, as they would if both used one
    consumer group id (the broker holds a group's rebalance until every known member rejoins or expires)."""
    doomed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", MEMBER, kafka_bootstrap, settings.topic_prefix, stdout=asyncio.subprocess.PIPE)
    try:
        assert doomed.stdout is not None
        await publisher.publish(Topic.RUNS, run_started())
        assert await asyncio.wait_for(doomed.stdout.readline(), timeout=WAIT) == b"consuming\n"
    finally:
        doomed.kill()
        await doomed.wait()

    other = kafka_settings(kafka_bootstrap)
    other_publisher = KafkaBus(other, client_id="other-publisher")
    try:
        sent = run_started()
        await other_publisher.publish(Topic.RUNS, sent)
        inbox = Inbox()
        started = time.monotonic()
        async with consuming(other, other.consumer_group("orchestrator", "runs"), inbox):
            got = await inbox.next()
        assert got.id == sent.id
        # About 3 s to join a new group here; a shared group id would take the dead member's 15 s and more.
        assert time.monotonic() - started < 12, "the other installation waited for the killed one's session"
    finally:
        await other_publisher.stop()
