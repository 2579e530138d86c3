"""Event contracts: one envelope, typed payloads, topics. The only copy in Tidemark."""

from tidemark.events.contracts import (
    EVENT_TYPES,
    AlertSent,
    ConnectionChanged,
    DestinationSpec,
    EventPayload,
    PartitionField,
    PipelinePauseRequested,
    PipelineSpec,
    RunError,
    RunFinished,
    RunProgress,
    RunRequested,
    RunStarted,
    RunStatus,
    SchemaChange,
    SchemaDriftDetected,
    StreamSpec,
    StreamStats,
    SyncMode,
)
from tidemark.events.envelope import Envelope
from tidemark.events.topics import Topic

__all__ = [
    "EVENT_TYPES",
    "AlertSent",
    "ConnectionChanged",
    "DestinationSpec",
    "Envelope",
    "EventPayload",
    "PartitionField",
    "PipelinePauseRequested",
    "PipelineSpec",
    "RunError",
    "RunFinished",
    "RunProgress",
    "RunRequested",
    "RunStarted",
    "RunStatus",
    "SchemaChange",
    "SchemaDriftDetected",
    "StreamSpec",
    "StreamStats",
    "SyncMode",
    "Topic",
]
