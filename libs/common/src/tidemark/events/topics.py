"""Topics by domain. Events are keyed by their aggregate id so order holds per key."""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    RUNS = "runs"
    CONNECTIONS = "connections"
    PIPELINES = "pipelines"
    SCHEMA = "schema"
    ALERTS = "alerts"
    ACCESS = "access"

    def qualified(self, prefix: str) -> str:
        return f"{prefix}.{self.value}"
