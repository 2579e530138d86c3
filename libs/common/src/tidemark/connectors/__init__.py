"""Connectors: the source protocol, the registry, and the built-in sources."""

from tidemark.connectors.base import (
    Catalog,
    ColumnInfo,
    ConnectorConfig,
    KeyRange,
    Source,
    StreamInfo,
    StreamState,
)
from tidemark.connectors.registry import connector_types, get_connector

__all__ = [
    "Catalog",
    "ColumnInfo",
    "ConnectorConfig",
    "KeyRange",
    "Source",
    "StreamInfo",
    "StreamState",
    "connector_types",
    "get_connector",
]
