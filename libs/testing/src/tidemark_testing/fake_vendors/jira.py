"""A fake Jira Cloud site: fields, JQL search with token paging, projects, users, worklogs.

Shapes, limits and errors as documented at
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-fields/#api-rest-api-3-field-get,
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/#api-rest-api-3-search-jql-post
(``nextPageToken``, ``isLast``), https://support.atlassian.com/jira-software-cloud/docs/jql-fields/#Updated
(times as ``yyyy/MM/dd HH:mm`` in the user's time zone, minute precision),
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-myself/ (``timeZone``),
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-projects/#api-rest-api-3-project-search-get,
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-users/#api-rest-api-3-users-search-get,
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-worklogs/
(``/worklog/updated`` with ``since``/``nextPage``/``lastPage``, ``/worklog/list``) and
https://developer.atlassian.com/cloud/jira/platform/rate-limiting/ (429 with ``Retry-After``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

from tidemark_testing.fake_vendors.server import Faults, install_faults

_CLAUSE = re.compile(r'^(\w+)\s*(>=|<=|>|<|=|in)\s*(.+)$', re.I)
_TIME = re.compile(r'^"(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2})"$')


def jira_time(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{aware.microsecond // 1000:03d}+0000"


def system_field(field_id: str, name: str, type_: str) -> dict[str, Any]:
    return {"id": field_id, "key": field_id, "name": name, "custom": False, "orderable": True, "navigable": True,
            "searchable": True, "clauseNames": [field_id], "schema": {"type": type_, "system": field_id}}


def custom_field(number: int, name: str, type_: str, plugin: str = "float") -> dict[str, Any]:
    return {"id": f"customfield_{number}", "key": f"customfield_{number}", "name": name, "custom": True,
            "orderable": True, "navigable": True, "searchable": True,
            "clauseNames": [f"cf[{number}]", name],
            "schema": {"type": type_, "custom": f"com.atlassian.jira.plugin.system.customfieldtypes:{plugin}",
                       "customId": number}}


class FakeJira:
    def __init__(self, email: str, token: str, time_zone: str = "UTC") -> None:
        self.credentials = "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode()
        self.time_zone = time_zone
        self.fields: list[dict[str, Any]] = []
        self.issues: dict[int, dict[str, Any]] = {}
        self.projects: list[dict[str, Any]] = []
        self.users: list[dict[str, Any]] = []
        self.worklogs: dict[int, dict[str, Any]] = {}
        self.worklog_page = 1000
        self.faults = Faults()
        self.searches: list[str] = []
        self.on_search: Callable[[int], None] | None = None
        self.app = self._app()

    def put_issue(self, issue_id: int, key: str, **fields: Any) -> None:
        target = self.issues.setdefault(issue_id, {"id": str(issue_id), "key": key, "fields": {}})
        for name, value in fields.items():
            target["fields"][name] = jira_time(value) if isinstance(value, datetime) else value

    def _app(self) -> FastAPI:
        app = FastAPI()
        install_faults(app, self.faults)

        def refused(authorization: str | None) -> JSONResponse | None:
            if authorization == self.credentials:
                return None
            return JSONResponse({"errorMessages": ["Client must be authenticated to access this resource."],
                                 "errors": {}}, 401)

        @app.get("/rest/api/3/myself")
        def myself(authorization: str | None = Header(default=None)) -> Any:
            return refused(authorization) or {"accountId": "5b10a2844c20165700ede21g", "accountType": "atlassian",
                                              "emailAddress": "bot@example.com", "timeZone": self.time_zone}

        @app.get("/rest/api/3/field")
        def fields(authorization: str | None = Header(default=None)) -> Any:
            return refused(authorization) or self.fields

        @app.post("/rest/api/3/search/jql")
        async def search(request: Request, authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            body = await request.json()
            self.searches.append(body["jql"])
            if self.on_search is not None:
                self.on_search(len(self.searches))
            limit = min(int(body.get("maxResults", 50)), 5000)
            try:
                found = self._jql(str(body["jql"]))
            except ValueError as exc:
                return JSONResponse({"errorMessages": [str(exc)], "errors": {}}, 400)
            token = body.get("nextPageToken")
            start = int(base64.b64decode(token).decode()) if token else 0
            page = found[start:start + limit]
            wanted = list(body.get("fields", []))
            out: dict[str, Any] = {"issues": [{"id": i["id"], "key": i["key"], "self": f"/rest/api/3/issue/{i['id']}",
                                               "fields": {f: i["fields"].get(f) for f in wanted}} for i in page],
                                   "isLast": start + limit >= len(found)}
            if not out["isLast"]:
                out["nextPageToken"] = base64.b64encode(str(start + limit).encode()).decode()
            return out

        @app.get("/rest/api/3/project/search")
        def projects(startAt: int = 0, maxResults: int = 50,  # noqa: N803 - Jira's parameter names
                     authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            page = self.projects[startAt:startAt + maxResults]
            return {"self": "", "maxResults": maxResults, "startAt": startAt, "total": len(self.projects),
                    "isLast": startAt + maxResults >= len(self.projects), "values": page}

        @app.get("/rest/api/3/users/search")
        def users(startAt: int = 0, maxResults: int = 50,  # noqa: N803 - Jira's parameter names
                  authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            # Jira cuts the page first and filters inactive app users after: pages can be short.
            return [u for u in self.users[startAt:startAt + maxResults] if not u.get("_hidden")]

        @app.get("/rest/api/3/worklog/updated")
        def worklogs_updated(request: Request, since: int = 0,
                             authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            ordered = sorted(((w["_updated_ms"], i) for i, w in self.worklogs.items() if w["_updated_ms"] > since))
            page = ordered[:self.worklog_page]
            last = not ordered[self.worklog_page:]
            until = page[-1][0] if page else since
            out: dict[str, Any] = {"values": [{"worklogId": i, "updatedTime": ms, "properties": []} for ms, i in page],
                                   "since": since, "until": until, "self": str(request.url), "lastPage": last}
            if not last:
                out["nextPage"] = str(request.url.replace_query_params(since=until))
            return out

        @app.post("/rest/api/3/worklog/list")
        async def worklog_list(request: Request, authorization: str | None = Header(default=None)) -> Any:
            if (no := refused(authorization)) is not None:
                return no
            ids = (await request.json())["ids"]
            if len(ids) > 1000:
                return JSONResponse({"errorMessages": ["The number of IDs must be at most 1000."]}, 400)
            return [{k: v for k, v in self.worklogs[i].items() if not k.startswith("_")}
                    for i in reversed(ids) if i in self.worklogs]

        return app

    def put_worklog(self, worklog_id: int, issue_id: int, account: str, started: datetime, seconds: int,
                    updated: datetime, comment: str | None = None) -> None:
        doc = None if comment is None else {"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": comment}]}]}
        self.worklogs[worklog_id] = {
            "id": str(worklog_id), "issueId": str(issue_id), "author": {"accountId": account},
            "started": jira_time(started), "timeSpentSeconds": seconds, "created": jira_time(updated),
            "updated": jira_time(updated), "comment": doc, "_updated_ms": int(updated.timestamp() * 1000)}

    # -- a JQL subset: `a AND b` of `field op value`, `project in (..)`, then ORDER BY ------

    def _jql(self, jql: str) -> list[dict[str, Any]]:
        parts = re.split(r"\s*\bORDER BY\b\s*", jql, maxsplit=1, flags=re.I)
        where, order = parts[0], parts[1] if len(parts) > 1 else ""
        tests = [self._clause(c.strip()) for c in re.split(r"\s+AND\s+", where) if c.strip()]
        found = [i for i in self.issues.values() if all(t(i) for t in tests)]
        for part in reversed([p.strip() for p in order.split(",") if p.strip()]):
            name, *direction = part.split()
            found.sort(key=lambda i: _sort_key(i, name), reverse=bool(direction) and direction[0].upper() == "DESC")
        return found

    def _clause(self, clause: str) -> Callable[[dict[str, Any]], bool]:
        m = _CLAUSE.match(clause)
        if m is None:
            raise ValueError(f"Error in the JQL Query: cannot parse {clause!r}.")
        name, op, raw = m[1], m[2].lower(), m[3].strip()
        if op == "in":
            keys = {k.strip().strip('"') for k in raw.strip("()").split(",")}
            return lambda i: i["key"].split("-")[0] in keys
        t = _TIME.match(raw)
        if t is None:
            raise ValueError(f"Date value '{raw.strip(chr(34))}' for field '{name}' is invalid. Valid formats include: "
                             "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
                             "format e.g. '-5d', '4w 2d'.")
        year, month, day, hour, minute = (int(x) for x in t.groups())
        local = datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(self.time_zone))

        def test(issue: dict[str, Any]) -> bool:
            value = issue["fields"].get(name)
            if value is None:
                return False
            # The literal names a minute; the issue's time is exact.
            at = datetime.fromisoformat(value)
            return {">=": at >= local, ">": at > local, "<": at < local, "<=": at <= local, "=": at == local}[op]
        return test


def _sort_key(issue: dict[str, Any], name: str) -> tuple[int, Any]:
    if name == "id":
        return (0, int(issue["id"]))
    value = issue["fields"].get(name)
    return (1, 0) if value is None else (0, datetime.fromisoformat(value))


def at(minutes: float) -> datetime:
    """A fixed test time ``minutes`` after 2024-05-01 00:00 UTC."""
    return datetime(2024, 5, 1, tzinfo=UTC) + timedelta(minutes=minutes)
