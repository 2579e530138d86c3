"""A fake Salesforce org: OAuth 2 token endpoint, describe, SOQL query/queryAll with
``nextRecordsUrl``, record counts, and Bulk API 2.0 query jobs.

Shapes, limits and errors as documented at
https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm and
``remoteaccess_oauth_client_credentials_flow.htm`` (token response with ``instance_url``; ``invalid_grant``),
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm,
``resources_query.htm`` / ``resources_queryall.htm`` (``done``, ``nextRecordsUrl``, results fixed when the
query starts), ``resources_record_count.htm``, ``errorcodes.htm`` (401 ``INVALID_SESSION_ID``, 400
``INVALID_FIELD``), and https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/
``query_create_job.htm``, ``query_get_one_job.htm``, ``query_get_job_results.htm`` (CSV, ``Sforce-Locator``).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response

from tidemark_testing.fake_vendors.server import Faults, form, install_faults

V = "v61.0"
_SELECT = re.compile(r"^SELECT\s+(.+?)\s+FROM\s+(\w+)(?:\s+WHERE\s+(.+?))?(?:\s+ORDER BY\s+(\w+)(?:\s+ASC)?)?$",
                     re.I | re.S)
_WHERE = re.compile(r"^(\w+)\s*(>=|>|<=|<|=)\s*(\S+)$")


def sf_datetime(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{aware.microsecond // 1000:03d}+0000"


def sf_field(name: str, type_: str, *, precision: int = 0, scale: int = 0, nillable: bool = True) -> dict[str, Any]:
    """A field as ``describe`` lists it (the attributes the source reads, and a few more)."""
    return {"name": name, "label": name, "type": type_, "precision": precision, "scale": scale, "length": 255,
            "nillable": nillable, "filterable": True, "sortable": True, "custom": name.endswith("__c"),
            "soapType": {"int": "xsd:int", "boolean": "xsd:boolean", "datetime": "xsd:dateTime"}.get(type_,
                                                                                                   "xsd:string")}


STANDARD = [sf_field("Id", "id", nillable=False), sf_field("IsDeleted", "boolean", nillable=False),
            sf_field("Name", "string"), sf_field("SystemModstamp", "datetime", nillable=False),
            sf_field("BillingAddress", "address")]


class FakeSalesforce:
    def __init__(self, client_id: str, client_secret: str, refresh_token: str) -> None:
        self.client = (client_id, client_secret)
        self.refresh_token = refresh_token
        self.revoked = False
        self.objects: dict[str, list[dict[str, Any]]] = {}
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self.page_size = 2000
        self.expire_after: int | None = None
        self.tokens: list[str] = []
        self._served = 0
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self._jobs: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.queries: list[str] = []
        self.bulk_jobs: list[str] = []
        self.faults = Faults()
        self.uri = ""
        self.app = self._app()

    def put(self, obj: str, record_id: str, **values: Any) -> None:
        self.records.setdefault(obj, {}).setdefault(record_id, {"Id": record_id, "IsDeleted": False}).update(values)

    # -- app -------------------------------------------------------------------------------

    def _app(self) -> FastAPI:
        app = FastAPI()
        install_faults(app, self.faults, exempt=("/services/oauth2",))

        @app.post("/services/oauth2/token")
        async def token(request: Request) -> JSONResponse:
            sent = await form(request)
            if (sent.get("client_id"), sent.get("client_secret")) != self.client:
                return JSONResponse({"error": "invalid_client", "error_description": "invalid client credentials"},
                                    400)
            if sent.get("grant_type") == "refresh_token" and (self.revoked or
                                                               sent.get("refresh_token") != self.refresh_token):
                return JSONResponse({"error": "invalid_grant", "error_description": "expired access/refresh token"},
                                    400)
            issued = f"00Dxx0000001gPL!AR8AQ{next(self._ids)}"
            self.tokens.append(issued)
            self._served = 0
            return JSONResponse({"access_token": issued, "instance_url": self.uri, "token_type": "Bearer",
                                 "id": f"{self.uri}/id/00Dxx0000001gPLEAY/005xx000001Sv6eAAC",
                                 "issued_at": "1278448832702", "signature": "0CmxinZir53Yex7nE0TD+zMpvIWYGb="})

        def refused(authorization: str | None) -> JSONResponse | None:
            current = bool(self.tokens) and authorization == f"Bearer {self.tokens[-1]}"
            if current and (self.expire_after is None or self._served < self.expire_after):
                self._served += 1
                return None
            return JSONResponse([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], 401)

        @app.get(f"/services/data/{V}/sobjects/{{obj}}/describe")
        def describe(obj: str, authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            if obj not in self.objects:
                return JSONResponse([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}],
                                    404)
            return {"name": obj, "label": obj, "queryable": True, "replicateable": True, "fields": self.objects[obj]}

        @app.get(f"/services/data/{V}/limits/recordCount")
        def record_count(sObjects: str = "", authorization: str | None = Header(default=None)) -> Any:  # noqa: N803
            if (no := refused(authorization)) is not None:
                return no
            names = [n for n in sObjects.split(",") if n]
            return {"sObjects": [{"count": len(self.records.get(n, {})), "name": n} for n in names]}

        def query_page(locator: str, start: int) -> dict[str, Any]:
            rows = self._cursors[locator]
            end = start + self.page_size
            body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows), "records": rows[start:end]}
            if end < len(rows):
                body["nextRecordsUrl"] = f"/services/data/{V}/query/{locator}-{end}"
            return body

        def run(q: str, all_rows: bool) -> Any:
            self.queries.append(q)
            try:
                rows = self._select(q, all_rows)
            except ValueError as exc:
                return JSONResponse([{"message": str(exc), "errorCode": "INVALID_FIELD"}], 400)
            locator = f"01gxx{next(self._ids):010d}"
            self._cursors[locator] = [{"attributes": {"type": "sObject", "url": ""}, **r} for r in rows]
            return query_page(locator, 0)

        @app.get(f"/services/data/{V}/query")
        def query(q: str, authorization: str | None = Header(default=None)) -> Any:
            return refused(authorization) or run(q, all_rows=False)

        @app.get(f"/services/data/{V}/queryAll")
        def query_all(q: str, authorization: str | None = Header(default=None)) -> Any:
            return refused(authorization) or run(q, all_rows=True)

        @app.get(f"/services/data/{V}/query/{{locator_at}}")
        def query_more(locator_at: str, authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            locator, _, start = locator_at.rpartition("-")
            return query_page(locator, int(start))

        @app.post(f"/services/data/{V}/jobs/query")
        async def create_job(request: Request, authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            body = await request.json()
            self.bulk_jobs.append(body["query"])
            try:
                rows = self._select(body["query"], body.get("operation") == "queryAll")
            except ValueError as exc:
                return JSONResponse([{"message": str(exc), "errorCode": "INVALIDJOB"}], 400)
            job_id = f"750xx{next(self._ids):010d}"
            self._jobs[job_id] = {"rows": rows, "polls": 0, "columns": _columns(body["query"])}
            return {"id": job_id, "operation": body.get("operation", "query"), "object": "", "state": "UploadComplete",
                    "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": 61.0}

        @app.get(f"/services/data/{V}/jobs/query/{{job_id}}")
        def job_state(job_id: str, authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            job = self._jobs[job_id]
            job["polls"] += 1
            state = "InProgress" if job["polls"] < 2 else "JobComplete"
            return {"id": job_id, "state": state, "numberRecordsProcessed": len(job["rows"])}

        @app.get(f"/services/data/{V}/jobs/query/{{job_id}}/results")
        def job_results(job_id: str, maxRecords: int = 10_000, locator: str | None = None,  # noqa: N803
                        authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            job = self._jobs[job_id]
            start = int(locator) if locator else 0
            rows = job["rows"][start:start + maxRecords]
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(job["columns"])
            for r in rows:
                writer.writerow([_csv_value(r.get(c)) for c in job["columns"]])
            following = str(start + maxRecords) if start + maxRecords < len(job["rows"]) else "null"
            return Response(out.getvalue(), media_type="text/csv", headers={"Sforce-Locator": following,
                                                                           "Sforce-NumberOfRecords": str(len(rows))})

        return app

    # -- a SOQL subset: SELECT fields FROM object [WHERE f op literal [AND ...]] [ORDER BY f ASC] ------

    def _select(self, soql: str, all_rows: bool) -> list[dict[str, Any]]:
        m = _SELECT.match(soql.strip())
        if m is None:
            raise ValueError(f"unexpected token in {soql!r}")
        columns, obj, where, order = _columns(soql), m[2], m[3], m[4]
        if obj not in self.objects:
            raise ValueError(f"sObject type '{obj}' is not supported.")
        known = {f["name"] for f in self.objects[obj]}
        for c in columns + ([order] if order else []):
            if c not in known:
                raise ValueError(f"No such column '{c}' on entity '{obj}'.")
        rows = [r for r in self.records.get(obj, {}).values() if all_rows or not r.get("IsDeleted")]
        for clause in re.split(r"\s+AND\s+", where or "") if where else []:
            w = _WHERE.match(clause.strip())
            if w is None:
                raise ValueError(f"unexpected token in {clause!r}")
            name, op, literal = w[1], w[2], _literal(w[3])
            rows = [r for r in rows if r.get(name) is not None and _compare(_typed(r[name]), op, literal)]
        if order:
            rows.sort(key=lambda r: _typed(r.get(order)))
        return [{c: _json(r.get(c)) for c in columns} for r in rows]


def _columns(soql: str) -> list[str]:
    m = _SELECT.match(soql.strip())
    return [c.strip() for c in m[1].split(",")] if m else []


def _literal(text: str) -> Any:
    if re.match(r"^\d{4}-\d{2}-\d{2}T", text):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    if re.match(r"^\d{4}-\d{2}-\d{2}$", text):
        return date.fromisoformat(text)
    return Decimal(text)


def _typed(value: Any) -> Any:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return value


def _compare(value: Any, op: str, literal: Any) -> bool:
    return bool({">=": value >= literal, ">": value > literal, "<": value < literal, "<=": value <= literal,
                 "=": value == literal}[op])


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return sf_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
