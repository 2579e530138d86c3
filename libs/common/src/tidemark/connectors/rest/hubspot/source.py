"""HubSpot CRM objects and associations.

Schema: ``GET /crm/v3/properties/{object}``, one column per property plus the record ``id``.
Full refresh: ``GET /crm/v3/objects/{object}`` with ``after`` paging. Incremental: the search
API, sorted on the cursor property and sliced by the cursor itself (each query starts at the
last value read, see :mod:`.search`), so no query meets the search API's 10,000-result window
and records updated while the sync runs neither shift pages nor come back twice.
Associations: ``POST /crm/v4/associations/{from}/{to}/batch/read`` for every page of ``from`` ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import httpx
import pyarrow as pa

from tidemark.connectors.rest.auth import BearerToken
from tidemark.connectors.rest.errors import Advice
from tidemark.connectors.rest.http import RestClient
from tidemark.connectors.rest.hubspot.config import HubSpotConfig
from tidemark.connectors.rest.hubspot.search import search_records
from tidemark.connectors.rest.paging import cursor_pages
from tidemark.connectors.rest.records import converter
from tidemark.connectors.rest.source import RestSource, RestStream
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode


def _special(response: httpx.Response, what: str) -> SourceError | None:
    """HubSpot names the scopes a call lacks (``MISSING_SCOPES``): say which to grant."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("category") != "MISSING_SCOPES":
        return None
    scopes = sorted({s for e in body.get("errors", []) if isinstance(e, dict)
                     for s in (e.get("context") or {}).get("requiredGranularScopes", [])})
    return SourceError(f"the private app may not {what}: give it the scope{'s' if len(scopes) > 1 else ''} "
                       f"{', '.join(scopes) or 'the call needs'} (HubSpot: Settings → Integrations → Private Apps → "
                       "Scopes), then check the connection again", FailureKind.CONFIG, field="access_token")


ADVICE = Advice(
    vendor="HubSpot",
    credentials="create a new access token for the private app (HubSpot: Settings → Integrations → Private Apps) "
                "and update access_token on the connection",
    credentials_field="access_token",
    permission="give the private app the read scopes of the objects it reads "
               "(crm.objects.<object>.read and crm.schemas.<object>.read)",
    special=_special,
)

# HubSpot property types (https://developers.hubspot.com/docs/api/crm/properties) → Arrow.
TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "enumeration": pa.string(),
    "phone_number": pa.string(),
    "number": pa.decimal128(38, 9),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us", tz="UTC"),
}
CURSOR_TYPES = {"number", "date", "datetime"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LIST_LIMIT = 100  # the most the CRM v3 list endpoints return per page
ASSOCIATION_FIELDS = [("from_id", pa.int64(), "from.id"), ("to_id", pa.int64(), "toObjectId"),
                      ("association_type_id", pa.int64(), "typeId"), ("category", pa.string(), "category"),
                      ("label", pa.string(), "label")]


def encode(value: Any) -> int | Decimal:
    """A cursor value as the search API filters it: epoch milliseconds for dates and times."""
    # Integer arithmetic, exact by construction: a boundary one millisecond off would be re-read by `GT`.
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (aware - EPOCH) // timedelta(milliseconds=1)
    if isinstance(value, date):
        return (datetime(value.year, value.month, value.day, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)
    if isinstance(value, int):
        return value
    return Decimal(str(value))


class HubSpotSource(RestSource):
    type_name: ClassVar[str] = "hubspot"
    title: ClassVar[str] = "HubSpot"
    config_model = HubSpotConfig
    config: HubSpotConfig

    def _make_client(self) -> RestClient:
        token = self.config.access_token.get_secret_value()
        return RestClient(self.config.base_url, advice=ADVICE, auth=BearerToken(token), secrets=[token],
                          timeout=self.config.timeout_seconds, requests_per_second=self.config.requests_per_second,
                          max_attempts=self.config.max_attempts, sleep=self.sleep, url_field="base_url")

    def _discover(self) -> list[RestStream]:
        streams = [self._object_stream(name) for name in self.config.objects]
        for pair in self.config.associations:
            source, target = pair.split(".")
            streams.append(RestStream(f"{source}_to_{target}", ASSOCIATION_FIELDS,
                                      ["from_id", "to_id", "association_type_id"], [],
                                      extra={"from": source, "to": target}))
        return streams

    def _object_stream(self, name: str) -> RestStream:
        body = self.client.json("GET", f"/crm/v3/properties/{name}", what=f"read the properties of HubSpot {name}")
        fields: list[tuple[str, pa.DataType, str]] = [("id", pa.int64(), "hs_object_id")]
        cursors = ["id"]
        for prop in body.get("results", []):
            kind = str(prop.get("type", "string"))
            fields.append((prop["name"], TYPES.get(kind, pa.string()), kind))
            if kind in CURSOR_TYPES:
                cursors.append(prop["name"])
        return RestStream(name, fields, ["id"], cursors, extra={"object": name})

    def _records(self, stream: RestStream, spec: StreamSpec, bound: tuple[str, Any] | None,
                 columns: list[str]) -> Iterator[dict[str, Any]]:
        if "from" in stream.extra:
            yield from self._associations(stream.extra["from"], stream.extra["to"])
            return
        obj = stream.extra["object"]
        properties = [c for c in columns if c != "id"]
        if spec.sync_mode is SyncMode.FULL_REFRESH or spec.cursor_field is None:
            yield from self._list(obj, properties)
            return
        prop = "hs_object_id" if spec.cursor_field == "id" else spec.cursor_field
        lower = None if bound is None else (bound[0], encode(bound[1]))
        typ = stream.type_of(spec.cursor_field)
        # A time cursor ends at the vendor's now (to the second): what changes while we read, or
        # within that second, belongs to the next run.
        upper = encode(self.client.server_now()) if pa.types.is_timestamp(typ) or pa.types.is_date(typ) else None
        # The cursor's value orders the slices, selected or not.
        asked = properties if prop in properties or prop == "hs_object_id" else [*properties, prop]
        for record in search_records(self.client, obj, prop, asked, lower, upper,
                                     value=lambda r: encode_value(r, prop, typ)):
            yield {"id": record["id"], **record.get("properties", {})}

    def _list(self, obj: str, properties: list[str]) -> Iterator[dict[str, Any]]:
        params = {"limit": LIST_LIMIT, "archived": "false", "properties": ",".join(properties or ["hs_object_id"])}
        for page in cursor_pages(self.client, "GET", f"/crm/v3/objects/{obj}", what=f"list HubSpot {obj}",
                                 name="after", params=params, next_cursor=_next_after):
            for record in page.get("results", []):
                yield {"id": record["id"], **record.get("properties", {})}

    def _associations(self, source: str, target: str) -> Iterator[dict[str, Any]]:
        ids_pages = cursor_pages(self.client, "GET", f"/crm/v3/objects/{source}", what=f"list HubSpot {source}",
                                 name="after", params={"limit": LIST_LIMIT, "properties": "hs_object_id"},
                                 next_cursor=_next_after)
        for page in ids_pages:
            inputs = [{"id": r["id"]} for r in page.get("results", [])]
            if not inputs:
                continue
            body = self.client.json("POST", f"/crm/v4/associations/{source}/{target}/batch/read",
                                    what=f"read HubSpot {source}→{target} associations", json={"inputs": inputs})
            for result in body.get("results", []):
                for to in result.get("to", []):
                    for kind in to.get("associationTypes", []):
                        yield {"from_id": result["from"]["id"], "to_id": to["toObjectId"],
                               "association_type_id": kind.get("typeId"), "category": kind.get("category"),
                               "label": kind.get("label")}


def encode_value(record: dict[str, Any], prop: str, typ: pa.DataType) -> int | Decimal | None:
    """The cursor value of a search result, encoded like the filters."""
    raw = record["id"] if prop == "hs_object_id" else record.get("properties", {}).get(prop)
    if raw is None or raw == "":
        return None
    return encode(converter(typ)(raw))


def _next_after(page: Any) -> str | None:
    following = page.get("paging", {}).get("next", {}).get("after") if isinstance(page, dict) else None
    return str(following) if following else None
