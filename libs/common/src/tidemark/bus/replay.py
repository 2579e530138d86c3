"""Reading a whole topic from its first retained message to its end, outside any consumer group:
how a read model is rebuilt from the events it was made of (nothing is committed, no group moves)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from tidemark.bus.kafka import client_options, decode
from tidemark.events import Envelope, Topic
from tidemark.settings import KafkaSettings


async def replay(settings: KafkaSettings, topic: Topic, client_id: str = "tidemark-replay",
                 metadata_timeout: float = 30.0) -> AsyncIterator[Envelope]:
    """Every event of ``topic`` up to the end it had when the replay started; each partition in
    order (events of one aggregate share a partition, so each aggregate's order holds)."""
    name = topic.qualified(settings.topic_prefix)
    consumer = AIOKafkaConsumer(**client_options(settings, client_id), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    try:
        await consumer.start()
        async with asyncio.timeout(metadata_timeout):
            while True:
                if name not in await consumer.topics():  # asks the broker for fresh metadata
                    return  # no such topic: nothing was ever published to it
                partitions = consumer.partitions_for_topic(name)
                if partitions:
                    break
                await asyncio.sleep(0.1)
        assigned = [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        remaining = {tp for tp in assigned if await consumer.position(tp) < ends[tp]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=500)
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset >= ends[tp]:
                        break
                    envelope = decode(client_id, message.value)
                    if envelope is not None:
                        yield envelope
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        with contextlib.suppress(KafkaError):
            await consumer.stop()
