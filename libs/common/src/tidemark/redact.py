"""Secrets out of text that leaves a process (log records shipped to jobs-svc): the values a
process has been handed as secrets (a connection's password), and the shapes secrets take in
messages (a password in a URL or DSN, `password=...`, bearer tokens, cloud keys)."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

MASK = "**********"


def secret_forms(secret: str) -> set[str]:
    """The forms a secret value travels in through text: plain, URL-encoded (drivers echo DSNs; as a path
    segment `/` stays, as a query value space is `+`), and JSON-escaped (a JSON body quoted in a message)."""
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1]}


def basic_credentials(user: str, secret: str) -> str:
    """The value of a Basic ``Authorization`` header after ``Basic ``: base64 of ``user:secret``, which
    holds the secret without containing it."""
    return base64.b64encode(f"{user}:{secret}".encode()).decode()

def _basic_header(match: re.Match[str]) -> str:
    try:
        decoded = base64.b64decode(match["b64"], validate=True)
    except ValueError:
        return match[0]
    return match["keep"] + MASK if b":" in decoded else match[0]


_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # scheme://user:secret@host
    (re.compile(r"(?P<keep>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+(?=@)"), r"\g<keep>" + MASK),
    # password=..., pwd: ..., secret = "...", token=..., "api_key": "..."  (quoted or bare)
    (re.compile(r"(?i)(?P<keep>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|"
                r"secret[_-]?key|client[_-]?secret|sas[_-]?token|account[_-]?key)\b[\"']?\s*[=:]\s*)"
                r"(?:\"[^\"]*\"|'[^']*'|[^\s,;&'\"}]+)"), r"\g<keep>" + MASK),
    (re.compile(r"(?i)(?P<keep>\bbearer\s+)[A-Za-z0-9._~+/=-]+"), r"\g<keep>" + MASK),
    # An echoed Basic header: base64 of "user:secret" (not the words in "Basic auth failed").
    (re.compile(r"(?P<keep>\bBasic\s+)(?P<b64>[A-Za-z0-9+/]{4,}={0,2})(?![A-Za-z0-9+/=])"), _basic_header),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), MASK),
]


class Redactor:
    """Remembers secret values (thread-safe) and removes them, and secret-shaped text, from strings."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def remember(self, secrets: Iterable[str]) -> None:
        # Plain and URL-encoded: drivers echo DSNs in either form. Very short values would mask
        # ordinary words, so they are left to the patterns.
        found = {v for s in secrets if s and len(s) >= 4 for v in secret_forms(s)}
        with self._lock:
            self._values |= found

    def __call__(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)  # longest first: a secret holding another
        for value in values:
            text = text.replace(value, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


REDACT = Redactor()
"""The process's redactor: the worker remembers its connection's secret values in it."""
