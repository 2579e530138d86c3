"""Identifiers: uuid7 everywhere, so ids sort by creation time."""

from __future__ import annotations

import uuid

from uuid_utils import compat


def new_id() -> uuid.UUID:
    """A time-ordered UUIDv7."""
    return compat.uuid7()
