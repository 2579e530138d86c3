"""Kafka bus on aiokafka: acks=all producer, consumer groups with manual commits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import IllegalStateError, KafkaError, TopicAlreadyExistsError
from pydantic import ValidationError

from tidemark.aio import cancel_and_wait
from tidemark.bus.base import Bus, Handler
from tidemark.bus.dispatch import dispatch_many
from tidemark.bus.metrics import CONSUMER_LAG, EVENTS_CONSUMED, EVENTS_PUBLISHED
from tidemark.bus.retry import backoff_seconds
from tidemark.errors import TransientError
from tidemark.events import Envelope, Topic
from tidemark.logs import fields
from tidemark.settings import KafkaSettings

log = logging.getLogger(__name__)


def client_options(s: KafkaSettings, client_id: str) -> dict[str, Any]:
    """What every aiokafka client of Tidemark is built with: servers, client id, security."""
    opts: dict[str, Any] = {
        "bootstrap_servers": s.bootstrap_servers,
        "client_id": client_id,
        "security_protocol": s.security_protocol,
    }
    if s.security_protocol.endswith("SSL"):
        # aiokafka refuses SSL without a context. Verify the brokers against the system CAs, or against
        # `ssl_cafile` (a private CA, e.g. a mounted Secret); read once per client, at start-up.
        opts["ssl_context"] = ssl.create_default_context(cafile=str(s.ssl_cafile) if s.ssl_cafile else None)
    if s.sasl_mechanism:
        opts["sasl_mechanism"] = s.sasl_mechanism
        opts["sasl_plain_username"] = s.sasl_username
        opts["sasl_plain_password"] = s.sasl_password.get_secret_value() if s.sasl_password else None
    return opts


class KafkaBus(Bus):
    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._groups: list[tuple[str, list[Topic], Handler]] = []
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._topics_ready = False

    def _common(self) -> dict[str, Any]:
        return client_options(self._settings, self._client_id)

    def topic_name(self, topic: Topic) -> str:
        return topic.qualified(self._settings.topic_prefix)

    def subscribe(self, group: str, topics: Sequence[Topic], handler: Handler) -> None:
        self._groups.append((group, list(topics), handler))

    async def start(self) -> None:
        # Consumers connect in the background: a service starts (and reports not ready)
        # while the broker is down, instead of crash-looping.
        for group, topics, handler in self._groups:
            self._tasks.append(asyncio.create_task(self._consume_forever(group, topics, handler)))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self._producer is not None:
            with contextlib.suppress(KafkaError):
                await self._producer.stop()
            self._producer = None

    async def ensure_topics(self) -> None:
        admin = AIOKafkaAdminClient(**self._common())
        try:
            await admin.start()
            wanted = [
                NewTopic(self.topic_name(t), self._settings.partitions, self._settings.replication_factor)
                for t in Topic
            ]
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t.name not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
        finally:
            await admin.close()
        self._topics_ready = True

    async def _get_producer(self) -> AIOKafkaProducer:
        async with self._producer_lock:
            if self._producer is None:
                if not self._topics_ready:
                    await self.ensure_topics()
                producer = AIOKafkaProducer(
                    **self._common(),
                    acks="all",
                    enable_idempotence=self._settings.enable_idempotence,
                    request_timeout_ms=10_000,
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def publish(self, topic: Topic, envelope: Envelope) -> None:
        try:
            producer = await self._get_producer()
            await producer.send_and_wait(
                self.topic_name(topic), envelope.to_bytes(), key=envelope.subject.encode()
            )
        except KafkaError as exc:
            # The broker may have restarted without our topics; make sure they exist next time.
            self._topics_ready = False
            raise TransientError(f"Kafka publish failed: {type(exc).__name__}") from exc
        EVENTS_PUBLISHED.labels(topic.value, envelope.type).inc()

    async def publish_many(self, events: Sequence[tuple[Topic, Envelope]]) -> None:
        """All sent before any acknowledgement is awaited: the producer batches them, so a relay
        publishes thousands a second instead of one per round trip. aiokafka appends a partition's
        messages in send order and has one batch per partition in flight, so each key keeps its order."""
        try:
            producer = await self._get_producer()
            pending = [await producer.send(self.topic_name(topic), envelope.to_bytes(), key=envelope.subject.encode())
                       for topic, envelope in events]
            await asyncio.gather(*pending)
        except KafkaError as exc:
            self._topics_ready = False
            raise TransientError(f"Kafka publish failed: {type(exc).__name__}") from exc
        for topic, envelope in events:
            EVENTS_PUBLISHED.labels(topic.value, envelope.type).inc()

    async def ready(self) -> bool:
        admin = AIOKafkaAdminClient(**self._common(), request_timeout_ms=3_000)
        try:
            await asyncio.wait_for(admin.start(), timeout=3)
            await asyncio.wait_for(admin.list_topics(), timeout=3)
        except (KafkaError, TimeoutError, OSError):
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        return True

    async def _consume_forever(self, group: str, topics: list[Topic], handler: Handler) -> None:
        attempt = 0
        while True:
            try:
                await self._consume(group, topics, handler)
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                delay = backoff_seconds(attempt, base=0.5, cap=15)
                attempt += 1
                log.warning("consumer lost the broker; reconnecting",
                            extra=fields(group=group, error=type(exc).__name__, retry_in_s=round(delay, 2)))
                await asyncio.sleep(delay)

    async def _consume(self, group: str, topics: list[Topic], handler: Handler) -> None:
        if not self._topics_ready:
            await self.ensure_topics()
        consumer = AIOKafkaConsumer(
            *[self.topic_name(t) for t in topics],
            **self._common(),
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._settings.session_timeout_ms,
            heartbeat_interval_ms=self._settings.heartbeat_interval_ms,
            fetch_max_wait_ms=self._settings.fetch_max_wait_ms,
        )
        try:
            # Inside the try: a start that fails (broker down) must still close its connections.
            await consumer.start()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=100)
                # The fetched batch counts as lag until handled: a slow handler shows as a growing lag.
                await self._observe_lag(consumer, group, topics, {tp: m[0].offset for tp, m in batches.items() if m})
                for tp, messages in batches.items():
                    envelopes = [e for e in (decode(group, m.value) for m in messages) if e is not None]
                    await dispatch_many(group, handler, envelopes)
                    if messages:
                        await consumer.commit({tp: messages[-1].offset + 1})
                await self._observe_lag(consumer, group, topics, {})
        finally:
            with contextlib.suppress(KafkaError):
                await consumer.stop()

    async def _observe_lag(self, consumer: AIOKafkaConsumer, group: str, topics: list[Topic],
                           in_hand: dict[TopicPartition, int]) -> None:
        """Sum highwater minus position over the partitions this process holds, per topic; for a partition
        with fetched messages not yet handled, the position is the first of those (``in_hand``). Other
        replicas of the group report their own partitions: the group's lag is the sum over processes."""
        by_name = {self.topic_name(t): t for t in topics}
        lag = dict.fromkeys(topics, 0)
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)  # known once a fetch for the partition answered
            if highwater is None or tp.topic not in by_name:
                continue
            position = in_hand[tp] if tp in in_hand else await _position(consumer, tp)
            if position is not None:
                lag[by_name[tp.topic]] += max(0, highwater - position)
        for topic, messages in lag.items():
            CONSUMER_LAG.labels(group, topic.value).set(messages)


async def _position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    try:
        position: int = await consumer.position(tp)
    except IllegalStateError:  # revoked by a rebalance since assignment() was read: not ours to count
        return None
    return position


def decode(group: str, raw: bytes | None) -> Envelope | None:
    try:
        return Envelope.from_bytes(raw or b"")
    except ValidationError:
        EVENTS_CONSUMED.labels(group, "undecodable", "failed").inc()
        log.error("undecodable message skipped", extra=fields(group=group, size=len(raw or b"")))
        return None
