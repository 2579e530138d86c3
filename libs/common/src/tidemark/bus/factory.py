"""Pick the bus a service's settings ask for."""

from __future__ import annotations

from tidemark.bus.base import Bus
from tidemark.bus.kafka import KafkaBus
from tidemark.bus.memory import MemoryBus
from tidemark.settings import ServiceSettings


def create_bus(settings: ServiceSettings) -> Bus:
    if settings.bus == "memory":
        return MemoryBus()
    return KafkaBus(settings.kafka, client_id=f"tidemark-{settings.service_name}")
