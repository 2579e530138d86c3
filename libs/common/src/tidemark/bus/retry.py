"""Backoff for transient failures: exponential with full jitter, capped."""

from __future__ import annotations

import random


def backoff_seconds(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    return random.uniform(0, min(cap, base * 2 ** max(0, attempt)))  # noqa: S311 - jitter, not crypto
