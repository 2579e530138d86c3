"""A fake HubSpot account: CRM v3 properties, list and search, v4 association batch reads.

Shapes, limits and errors as documented at
https://developers.hubspot.com/docs/api/crm/properties (``GET /crm/v3/properties/{objectType}``),
https://developers.hubspot.com/docs/api/crm/understanding-the-crm (``GET /crm/v3/objects/{objectType}``,
``limit`` ≤ 100, ``paging.next.after``), https://developers.hubspot.com/docs/api/crm/search (filters
``EQ``/``GT``/``GTE``/``LT``/``HAS_PROPERTY``, ``limit`` ≤ 200, at most 10,000 results per query,
datetime values compared as epoch milliseconds, every property value returned as a string),
https://developers.hubspot.com/docs/api/crm/associations (``POST /crm/v4/associations/{from}/{to}/batch/read``)
and https://developers.hubspot.com/docs/api/error-handling (401 ``INVALID_AUTHENTICATION``, 429).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

from tidemark_testing.fake_vendors.server import Faults, install_faults

WINDOW = 10_000


def hs_datetime(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass
class HubSpotObject:
    properties: list[dict[str, Any]]
    records: dict[int, dict[str, str | None]] = field(default_factory=dict)

    def prop_type(self, name: str) -> str:
        if name == "hs_object_id":
            return "number"
        return next((p["type"] for p in self.properties if p["name"] == name), "string")


def prop(name: str, type_: str, field_type: str | None = None) -> dict[str, Any]:
    """A property definition as ``/crm/v3/properties`` returns it."""
    return {"name": name, "label": name.replace("_", " ").title(), "type": type_,
            "fieldType": field_type or {"number": "number", "datetime": "date", "date": "date",
                                        "bool": "booleancheckbox"}.get(type_, "text"),
            "groupName": "info", "description": "", "hidden": False, "hasUniqueValue": False, "calculated": False,
            "formField": True, "archived": False}


class FakeHubSpot:
    def __init__(self, token: str) -> None:
        self.token = token
        self.objects: dict[str, HubSpotObject] = {}
        self.associations: dict[tuple[str, str], list[tuple[int, int, int, str]]] = {}
        self.faults = Faults()
        self.searches = 0
        self.missing_scopes: set[str] = set()
        self.on_search: Callable[[int], None] | None = None
        self._parsed: dict[tuple[str, int, str], Decimal | str | None] = {}
        self.app = self._app()

    def put(self, obj: str, record_id: int, **values: Any) -> None:
        """Create or update a record; datetimes and numbers are stored as HubSpot returns them (text)."""
        self._parsed.clear()
        target = self.objects[obj].records.setdefault(record_id, {})
        for key, value in values.items():
            if isinstance(value, datetime):
                value = hs_datetime(value)
            target[key] = None if value is None else str(value)

    def _app(self) -> FastAPI:
        app = FastAPI()
        install_faults(app, self.faults)

        def refused(authorization: str | None) -> JSONResponse | None:
            if authorization == f"Bearer {self.token}":
                return None
            return JSONResponse({"status": "error", "category": "INVALID_AUTHENTICATION",
                                 "message": "Authentication credentials not found. This API supports OAuth 2.0 "
                                            "authentication and you can find more details at "
                                            "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                                 "correlationId": "c0ffee"}, 401)

        def unknown(obj: str) -> JSONResponse:
            return JSONResponse({"status": "error", "category": "VALIDATION_ERROR",
                                 "message": f"Unable to infer object type from: {obj}"}, 400)

        def out(obj: str, record_id: int, names: list[str]) -> dict[str, Any]:
            values = self.objects[obj].records[record_id]
            return {"id": str(record_id), "properties": {n: values.get(n) for n in names} | {
                "hs_object_id": str(record_id)}, "archived": False}

        @app.get("/crm/v3/properties/{obj}")
        def properties(obj: str, authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            if obj in self.missing_scopes:
                return JSONResponse({"status": "error", "category": "MISSING_SCOPES",
                                     "message": "This app hasn't been granted all required scopes to make this call.",
                                     "errors": [{"message": "One or more of the following scopes are required.",
                                                 "context": {"requiredGranularScopes": [
                                                     f"crm.schemas.{obj}.read", f"crm.objects.{obj}.read"]}}]}, 403)
            if obj not in self.objects:
                return unknown(obj)
            return {"results": self.objects[obj].properties}

        @app.get("/crm/v3/objects/{obj}")
        def list_objects(obj: str, limit: int = 10, after: int = 0, properties: str = "",
                         authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            if obj not in self.objects:
                return unknown(obj)
            if limit > 100:
                return JSONResponse({"status": "error", "category": "VALIDATION_ERROR",
                                     "message": "limit must be at most 100"}, 400)
            ids = sorted(i for i in self.objects[obj].records if i >= after)
            names = [p for p in properties.split(",") if p]
            page = ids[:limit]
            body: dict[str, Any] = {"results": [out(obj, i, names) for i in page]}
            if len(ids) > limit:
                body["paging"] = {"next": {"after": str(ids[limit]), "link": "?after=" + str(ids[limit])}}
            return body

        @app.post("/crm/v3/objects/{obj}/search")
        async def search(obj: str, request: Request, authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            if obj not in self.objects:
                return unknown(obj)
            self.searches += 1
            if self.on_search is not None:
                self.on_search(self.searches)
            body = await request.json()
            limit, after = int(body.get("limit", 10)), int(body.get("after", 0))
            if limit > 200 or after + limit > WINDOW:
                return JSONResponse({"status": "error", "category": "VALIDATION_ERROR",
                                     "message": "There was a problem with the request.",
                                     "errors": [{"message": "Paging limit exceeded: at most 10000 results"}]}, 400)
            found = self._matching(obj, body.get("filterGroups", []))
            for sort in reversed(body.get("sorts", [])):
                name = str(sort["propertyName"])
                found.sort(key=lambda i: self._key(obj, i, name), reverse=sort.get("direction") == "DESCENDING")
            page = found[after:after + limit]
            names = list(body.get("properties", []))
            result: dict[str, Any] = {"total": len(found), "results": [out(obj, i, names) for i in page]}
            if after + limit < len(found):
                result["paging"] = {"next": {"after": str(after + limit)}}
            return result

        @app.post("/crm/v4/associations/{source}/{target}/batch/read")
        async def associations(source: str, target: str, request: Request,
                               authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            inputs = [int(i["id"]) for i in (await request.json())["inputs"]]
            if len(inputs) > 1000:
                return JSONResponse({"status": "error", "message": "at most 1000 inputs"}, 400)
            links = self.associations.get((source, target), [])
            results = []
            for from_id in inputs:
                tos: dict[int, list[dict[str, Any]]] = {}
                for f, t, type_id, label in links:
                    if f == from_id:
                        tos.setdefault(t, []).append({"category": "HUBSPOT_DEFINED", "typeId": type_id,
                                                      "label": label or None})
                if tos:
                    results.append({"from": {"id": str(from_id)},
                                    "to": [{"toObjectId": t, "associationTypes": k} for t, k in tos.items()]})
            return {"status": "COMPLETE", "results": results}

        return app

    def _value(self, obj: str, record_id: int, name: str) -> Decimal | str | None:
        key = (obj, record_id, name)
        if key not in self._parsed:
            self._parsed[key] = self._parse(obj, record_id, name)
        return self._parsed[key]

    def _parse(self, obj: str, record_id: int, name: str) -> Decimal | str | None:
        raw = str(record_id) if name == "hs_object_id" else self.objects[obj].records[record_id].get(name)
        if raw is None or raw == "":
            return None
        kind = self.objects[obj].prop_type(name)
        if kind == "datetime":
            return Decimal(_ms(raw))
        if kind == "date":
            return Decimal(_ms(raw + "T00:00:00Z"))
        if kind == "number":
            return Decimal(raw)
        return raw

    def _key(self, obj: str, record_id: int, name: str) -> tuple[int, Any]:
        value = self._value(obj, record_id, name)
        return (1, 0) if value is None else (0, value)

    def _matching(self, obj: str, groups: list[dict[str, Any]]) -> list[int]:
        def passes(record_id: int, f: dict[str, Any]) -> bool:
            value = self._value(obj, record_id, f["propertyName"])
            if f["operator"] == "HAS_PROPERTY":
                return value is not None
            if value is None:
                return False
            wanted: Any = f["value"]
            if isinstance(value, Decimal):
                wanted = Decimal(str(wanted))
            checks: dict[str, bool] = {"EQ": value == wanted, "GT": value > wanted, "GTE": value >= wanted,
                                       "LT": value < wanted, "LTE": value <= wanted}
            return checks[f["operator"]]

        ids = sorted(self.objects[obj].records)
        if not groups:
            return ids
        return [i for i in ids if any(all(passes(i, f) for f in g.get("filters", [])) for g in groups)]
