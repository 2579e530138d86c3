"""The vendors' authentication styles as ``httpx.Auth`` flows.

OAuth 2 fetches its token through the same flow (httpx sends the token request on the
client's own transport), and fetches a new one once when the API answers 401, so a token
that expires in the middle of a run is replaced without failing the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from typing import Any

import httpx

from tidemark.connectors.rest.errors import RETRY_STATUSES, RetryableError, retry_after, vendor_message
from tidemark.errors import FailureKind, SourceError
from tidemark.redact import basic_credentials


class BearerToken(httpx.Auth):
    """A static token (HubSpot private-app tokens)."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class BasicAuth(httpx.BasicAuth):
    """HTTP basic whose header value is a secret too: a vendor that echoes the header back in an error
    body echoes base64("user:token"), in which the token itself never appears."""

    def __init__(self, user: str, token: str) -> None:
        super().__init__(user, token)
        self.secret_forms = [basic_credentials(user, token)]


def basic(user: str, token: str) -> httpx.Auth:
    """HTTP basic with an account e-mail and an API token (Jira Cloud)."""
    return BasicAuth(user, token)


class OAuth2(httpx.Auth):
    """OAuth 2 with a refresh token or client credentials; the token response is kept in
    :attr:`token` (Salesforce puts the ``instance_url`` the API lives at in it)."""

    requires_response_body = True

    def __init__(self, token_url: str, client_id: str, client_secret: str, *, refresh_token: str | None = None,
                 scope: str | None = None, vendor: str, reconnect: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.token_url = token_url
        self._form = {"client_id": client_id, "client_secret": client_secret}
        if refresh_token:
            self._form |= {"grant_type": "refresh_token", "refresh_token": refresh_token}
        else:
            self._form["grant_type"] = "client_credentials"
        if scope:
            self._form["scope"] = scope
        self.vendor = vendor
        self.reconnect = reconnect
        self.token: dict[str, Any] = {}
        self.fetched = 0
        self._expires_at: float | None = None
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def form(self) -> dict[str, str]:
        return dict(self._form)

    def _token_request(self) -> httpx.Request:
        return httpx.Request("POST", self.token_url, data=self._form, headers={"Accept": "application/json"})

    def _valid(self) -> bool:
        # A minute's margin: a token about to expire would fail the request it is sent with.
        return bool(self.token) and (self._expires_at is None or self._clock() < self._expires_at - 60)

    def accept(self, response: httpx.Response) -> None:
        """Keep the token of a token endpoint's ``response``, or raise what its refusal means."""
        response.read()
        if response.status_code in RETRY_STATUSES:
            raise RetryableError(f"the {self.vendor} token endpoint answered {response.status_code}",
                                 status=response.status_code, retry_after=retry_after(response))
        body: Any = None
        if not response.is_error:
            try:
                body = response.json()
            except ValueError:
                body = None
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise self._refused(response)
        self.token = body
        self.fetched += 1
        expires_in = body.get("expires_in")
        self._expires_at = self._clock() + float(expires_in) if isinstance(expires_in, int | float) else None

    def _refused(self, response: httpx.Response) -> SourceError:
        error = ""
        try:
            body = response.json()
            error = str(body.get("error", "")) if isinstance(body, dict) else ""
        except ValueError:
            pass
        said = vendor_message(response)
        if error == "invalid_grant" and self._form["grant_type"] == "refresh_token":
            return SourceError(f"{self.vendor} says the refresh token was revoked or has expired ({said}): "
                               f"{self.reconnect}", FailureKind.CONFIG, field="refresh_token")
        if error in {"invalid_client", "unauthorized_client", "invalid_grant"}:
            return SourceError(f"{self.vendor} rejected the OAuth client ({said}): check client_id and "
                               "client_secret, and that the connected app may use this grant type",
                               FailureKind.CONFIG, field="client_secret")
        return SourceError(f"{self.vendor} refused to issue an access token ({response.status_code}: {said})",
                           FailureKind.CONFIG, field="client_id")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self._lock:
            valid = self._valid()
        if not valid:
            self.accept((yield self._token_request()))
        used = self.token["access_token"]
        request.headers["Authorization"] = f"Bearer {used}"
        response = yield request
        if response.status_code == 401:
            # Expired or revoked since we fetched it: one new token; a second 401 is the answer.
            with self._lock:
                stale = self.token.get("access_token") == used
            if stale:
                self.accept((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self.token['access_token']}"
            yield request
