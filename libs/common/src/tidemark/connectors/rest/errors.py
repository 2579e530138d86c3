"""What a vendor's refusal means for the user: every HTTP failure leaves the REST layer as a
:class:`~tidemark.errors.SourceError` that says what to do, never as a bare status code."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tidemark.errors import FailureKind, SourceError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class RetryableError(Exception):
    """A failure worth another attempt (429, 5xx, timeout, dropped connection); internal to the layer."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None,
                 timeout: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.timeout = timeout


@dataclass(frozen=True)
class Advice:
    """What a vendor's user does about refused credentials or missing permissions."""

    vendor: str
    credentials: str
    credentials_field: str
    permission: str
    # A vendor's own reading of an error body first (Salesforce's REQUEST_LIMIT_EXCEEDED is a 403).
    special: Callable[[httpx.Response, str], SourceError | None] | None = None


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait: ``Retry-After`` as seconds or as an HTTP date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def vendor_message(response: httpx.Response) -> str:
    """The human part of an error body, in the shapes the vendors use; the raw text otherwise."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text.strip()[:300]
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]  # Salesforce: [{"message": ..., "errorCode": ...}]
    if isinstance(body, dict):
        for key in ("message", "error_description", "errorMessage"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
        messages = body.get("errorMessages")
        if isinstance(messages, list) and messages:
            return "; ".join(str(m) for m in messages)  # Jira
        errors = body.get("errors")
        if isinstance(errors, dict) and errors:
            return "; ".join(f"{k}: {v}" for k, v in errors.items())  # Jira
        if isinstance(body.get("error"), str):
            return str(body["error"])
    return response.text.strip()[:300]


def explain(response: httpx.Response, advice: Advice, what: str) -> SourceError:
    """A non-retryable error response as a SourceError that says what to do."""
    if advice.special is not None and (found := advice.special(response, what)) is not None:
        return found
    status = response.status_code
    said = vendor_message(response)
    said = f" ({advice.vendor} said: {said})" if said else ""
    if status == 401:
        return SourceError(f"{advice.vendor} rejected the connection's credentials{said}: {advice.credentials}",
                           FailureKind.CONFIG, field=advice.credentials_field)
    if status == 403:
        return SourceError(f"the credentials may not {what}{said}: {advice.permission}", FailureKind.CONFIG)
    if status == 404:
        return SourceError(f"{advice.vendor} found nothing to {what}{said}: check the connection's base URL "
                           "and that the object exists in this account", FailureKind.CONFIG)
    if 400 <= status < 500:
        return SourceError(f"{advice.vendor} refused the request to {what} with {status}{said}", FailureKind.CONFIG)
    return SourceError(f"{advice.vendor} failed to {what} with {status}{said}", FailureKind.TERMINAL)
