"""Driver error text → a user-facing message and failure kind.

Which message a driver error gets is each database's own table of rules; removing secrets
from the text is the connector boundary's job (:mod:`tidemark.connectors.boundary`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tidemark.errors import FailureKind


@dataclass
class ErrorRule:
    """Driver error text → a user-facing message and failure kind (first match wins)."""

    needles: tuple[str, ...]
    kind: FailureKind
    message: str
    field: str | None = None


def classify(text: str, rules: Sequence[ErrorRule], fmt: dict[str, Any]) -> tuple[str, FailureKind, str | None] | None:
    lowered = text.lower()
    for rule in rules:
        if any(n in lowered for n in rule.needles):
            return rule.message.format(**fmt), rule.kind, rule.field
    return None
