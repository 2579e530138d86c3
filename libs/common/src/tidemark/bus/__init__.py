"""The event bus: Kafka in every deployment, an in-process bus for single-process runs and unit tests."""

from tidemark.bus.base import Bus, Handler
from tidemark.bus.factory import create_bus
from tidemark.bus.inbox import BatchHandler, IdempotentHandler, SessionHandler
from tidemark.bus.memory import MemoryBus
from tidemark.bus.outbox import MessagingTables, Outbox, OutboxRelay, messaging_tables

__all__ = [
    "BatchHandler",
    "Bus",
    "Handler",
    "IdempotentHandler",
    "MemoryBus",
    "MessagingTables",
    "Outbox",
    "OutboxRelay",
    "SessionHandler",
    "create_bus",
    "messaging_tables",
]
