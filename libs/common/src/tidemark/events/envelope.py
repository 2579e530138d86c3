"""The one envelope every event travels in."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from tidemark.errors import TerminalError
from tidemark.events.contracts import EVENT_TYPES, EventPayload
from tidemark.ids import new_id

P = TypeVar("P", bound=EventPayload)


class Envelope(BaseModel):
    # Tolerant like the payloads: a header a newer producer adds is ignored.
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: UUID = Field(description="uuid7; consumers deduplicate on it.")
    type: str = Field(description="Event type, e.g. `run.finished`.")
    occurred_at: datetime
    source: str = Field(description="The service that emitted the event.")
    subject: str = Field(description="Aggregate id; also the Kafka message key.")
    schema_version: int
    data: dict[str, Any]

    @classmethod
    def wrap(cls, payload: EventPayload, source: str) -> Envelope:
        return cls(
            id=new_id(),
            type=payload.event_type,
            occurred_at=datetime.now(UTC),
            source=source,
            subject=payload.subject(),
            schema_version=payload.schema_version,
            data=payload.model_dump(mode="json"),
        )

    def payload(self) -> EventPayload:
        model = EVENT_TYPES.get(self.type)
        if model is None:
            raise TerminalError(f"unknown event type {self.type!r}", event_id=str(self.id))
        return model.model_validate(self.data)

    def payload_as(self, model: builtins.type[P]) -> P:
        if self.type != model.event_type:
            raise TerminalError(f"expected {model.event_type}, got {self.type}", event_id=str(self.id))
        return model.model_validate(self.data)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)
