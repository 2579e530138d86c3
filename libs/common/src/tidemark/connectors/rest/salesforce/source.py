"""Salesforce sObjects.

Schema: ``GET /services/data/{v}/sobjects/{object}/describe``. Records: SOQL through
``/query`` (``/queryAll`` with deleted records) paged by ``nextRecordsUrl``; a query's
results are fixed when it starts, so records changed during the sync are read next run.
Incremental: ``WHERE <cursor> >= <last> ORDER BY <cursor>`` on ``SystemModstamp`` (or any
datetime or date field). Objects with more records than ``bulk_threshold``
(``/limits/recordCount``) go through Bulk API 2.0 instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import httpx

from tidemark.connectors.rest.auth import OAuth2
from tidemark.connectors.rest.errors import Advice, vendor_message
from tidemark.connectors.rest.http import RestClient
from tidemark.connectors.rest.paging import next_url_pages
from tidemark.connectors.rest.salesforce.bulk import bulk_query
from tidemark.connectors.rest.salesforce.config import SalesforceConfig
from tidemark.connectors.rest.salesforce.types import CURSOR_TYPES, SKIPPED, arrow_type
from tidemark.connectors.rest.source import RestSource, RestStream
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode


def _special(response: httpx.Response, what: str) -> SourceError | None:
    said = vendor_message(response)
    if "REQUEST_LIMIT_EXCEEDED" in response.text:
        return SourceError(f"the org's daily Salesforce API request limit is used up ({said}): run the pipeline "
                           "after the 24-hour window frees requests, or ask Salesforce for a higher limit",
                           FailureKind.TRANSIENT)
    if "INVALID_FIELD" in response.text or "INVALID_TYPE" in response.text:
        return SourceError(f"Salesforce refused the query to {what} ({said}): the field or object may have been "
                           "removed or hidden from the connection's user; discover the connection again",
                           FailureKind.CONFIG)
    return None


ADVICE = Advice(
    vendor="Salesforce",
    credentials="reconnect the Salesforce connection (its refresh token or connected app was revoked)",
    credentials_field="refresh_token",
    permission="give the connection's user read access to the object and its fields (profile or permission set)",
    special=_special,
)


def soql_literal(value: Any) -> str:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


class SalesforceSource(RestSource):
    type_name: ClassVar[str] = "salesforce"
    title: ClassVar[str] = "Salesforce"
    config_model = SalesforceConfig
    config: SalesforceConfig

    def _make_client(self) -> RestClient:
        cfg = self.config
        secret = cfg.client_secret.get_secret_value()
        refresh = cfg.refresh_token.get_secret_value() if cfg.refresh_token else None
        auth = OAuth2(f"{cfg.login_url.rstrip('/')}/services/oauth2/token", cfg.client_id, secret,
                      refresh_token=refresh, vendor="Salesforce",
                      reconnect="reconnect the Salesforce connection (authorize Tidemark again) and save the new "
                                "refresh token")
        client = RestClient(cfg.login_url, advice=ADVICE, auth=auth, secrets=[s for s in (secret, refresh) if s],
                            timeout=cfg.timeout_seconds, requests_per_second=cfg.requests_per_second,
                            max_attempts=cfg.max_attempts, sleep=self.sleep, url_field="login_url")
        # The token response names the instance the org's API lives at.
        try:
            auth.accept(client.request("POST", auth.token_url, what="get a Salesforce access token", data=auth.form,
                                       auth=None, raw=True))
        except BaseException:
            client.close()
            raise
        client.http.base_url = httpx.URL(str(auth.token.get("instance_url") or cfg.login_url))
        return client

    @property
    def _api(self) -> str:
        return f"/services/data/{self.config.api_version}"

    def _discover(self) -> list[RestStream]:
        return [self._describe(name) for name in self.config.objects]

    def _describe(self, name: str) -> RestStream:
        body = self.client.json("GET", f"{self._api}/sobjects/{name}/describe", what=f"describe Salesforce {name}")
        fields = [f for f in body.get("fields", []) if f.get("type") not in SKIPPED]
        if not self.config.include_deleted:
            fields = [f for f in fields if f.get("name") != "IsDeleted"]
        columns = [(str(f["name"]), arrow_type(f), str(f.get("type"))) for f in fields]
        cursors = [str(f["name"]) for f in fields if f.get("type") in CURSOR_TYPES and f.get("filterable", True)]
        key = ["Id"] if any(f.get("name") == "Id" for f in fields) else []
        return RestStream(str(body.get("name", name)), columns, key, cursors, extra={"object": name})

    def _records(self, stream: RestStream, spec: StreamSpec, bound: tuple[str, Any] | None,
                 columns: list[str]) -> Iterator[dict[str, Any]]:
        cursor = spec.cursor_field if spec.sync_mode is not SyncMode.FULL_REFRESH else None
        selected = columns + ([cursor] if cursor and cursor not in columns else [])
        # Names come from describe (columns are checked against it) and the validated config: no user text.
        soql = f"SELECT {', '.join(selected)} FROM {stream.extra['object']}"  # noqa: S608
        if bound is not None and cursor:
            soql += f" WHERE {cursor} {bound[0]} {soql_literal(bound[1])}"
        if self._bulk(stream.extra["object"]):
            yield from bulk_query(self.client, self.config.api_version, soql, query_all=self.config.include_deleted,
                                  poll_seconds=self.config.bulk_poll_seconds,
                                  page_records=self.config.bulk_page_records, sleep=self.sleep)
            return
        if cursor:
            soql += f" ORDER BY {cursor} ASC"
        endpoint = "queryAll" if self.config.include_deleted else "query"
        for page in next_url_pages(self.client, f"{self._api}/{endpoint}", what=f"query Salesforce {stream.name}",
                                   params={"q": soql}, next_url=lambda p: None if p.get("done", True)
                                   else p.get("nextRecordsUrl")):
            yield from page.get("records", [])

    def _bulk(self, obj: str) -> bool:
        if self.config.bulk_threshold == 0:
            return True
        body = self.client.json("GET", f"{self._api}/limits/recordCount", params={"sObjects": obj},
                                what=f"count Salesforce {obj} records")
        counts = {o.get("name"): int(o.get("count", 0)) for o in body.get("sObjects", [])}
        return counts.get(obj, 0) > self.config.bulk_threshold
