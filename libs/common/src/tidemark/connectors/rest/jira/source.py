"""Jira Cloud issues, projects, users and worklogs.

Issues: columns from ``GET /rest/api/3/field`` (see :mod:`.fields`), records from
``POST /rest/api/3/search/jql`` ordered by the cursor. JQL compares times to the minute, in
the account's own time zone, so each query starts at the minute of the last issue read (the
ids already read skipped), and the exact cursor bound is applied here; an incremental read
ends at the minute it started in, whose issues the next run reads. Worklogs: ids from
``GET /rest/api/3/worklog/updated`` (``since``, ``nextPage``), bodies from
``POST /rest/api/3/worklog/list``. Projects and users: ``startAt`` paging.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from tidemark.connectors.rest.auth import basic
from tidemark.connectors.rest.errors import Advice
from tidemark.connectors.rest.http import RestClient
from tidemark.connectors.rest.jira.config import JiraConfig
from tidemark.connectors.rest.jira.fields import BASE, JiraField, issue_fields, plain
from tidemark.connectors.rest.paging import cursor_pages, next_url_pages, offset_pages
from tidemark.connectors.rest.records import parse_timestamp
from tidemark.connectors.rest.source import RestSource, RestStream
from tidemark.events import StreamSpec, SyncMode

ADVICE = Advice(
    vendor="Jira",
    credentials="check email, and create a new API token for that account at "
                "https://id.atlassian.com/manage-profile/security/api-tokens, then update api_token",
    credentials_field="api_token",
    permission="give the account the Browse projects permission on the projects read "
               "(and Browse users and groups for the users stream)",
)
PAGE = 100
JQL_TIME = "%Y/%m/%d %H:%M"
TS = pa.timestamp("us", tz="UTC")
PROJECT_FIELDS = [("id", pa.int64(), "id"), ("key", pa.string(), "key"), ("name", pa.string(), "name"),
                  ("project_type_key", pa.string(), "projectTypeKey"), ("style", pa.string(), "style"),
                  ("simplified", pa.bool_(), "simplified"), ("is_private", pa.bool_(), "isPrivate")]
USER_FIELDS = [("account_id", pa.string(), "accountId"), ("account_type", pa.string(), "accountType"),
               ("display_name", pa.string(), "displayName"), ("email_address", pa.string(), "emailAddress"),
               ("active", pa.bool_(), "active"), ("time_zone", pa.string(), "timeZone"),
               ("locale", pa.string(), "locale")]
WORKLOG_FIELDS = [("id", pa.int64(), "id"), ("issue_id", pa.int64(), "issueId"),
                  ("author_account_id", pa.string(), "author.accountId"), ("started", TS, "started"),
                  ("time_spent_seconds", pa.int64(), "timeSpentSeconds"), ("created", TS, "created"),
                  ("updated", TS, "updated"), ("comment", pa.string(), "comment")]


def _renamed(record: dict[str, Any], fields: list[tuple[str, pa.DataType, str]]) -> dict[str, Any]:
    return {name: record.get(source) for name, _, source in fields}


class JiraSource(RestSource):
    type_name: ClassVar[str] = "jira"
    title: ClassVar[str] = "Jira"
    config_model = JiraConfig
    config: JiraConfig

    def _make_client(self) -> RestClient:
        token = self.config.api_token.get_secret_value()
        return RestClient(self.config.base_url, advice=ADVICE, auth=basic(self.config.email, token),
                          secrets=[token], timeout=self.config.timeout_seconds,
                          requests_per_second=self.config.requests_per_second,
                          max_attempts=self.config.max_attempts, sleep=self.sleep, url_field="base_url")

    def _discover(self) -> list[RestStream]:
        found = self.client.json("GET", "/rest/api/3/field", what="list the Jira issue fields")
        fields = issue_fields(found if isinstance(found, list) else [])
        columns = BASE + [(f.column, f.type, f.id) for f in fields]
        cursors = [f.column for f in fields if f.id in {"updated", "created"}]
        return [
            RestStream("issues", columns, ["id"], cursors, extra={"fields": fields}),
            RestStream("projects", PROJECT_FIELDS, ["id"], []),
            RestStream("users", USER_FIELDS, ["account_id"], []),
            RestStream("worklogs", WORKLOG_FIELDS, ["id"], ["updated"]),
        ]

    def _records(self, stream: RestStream, spec: StreamSpec, bound: tuple[str, Any] | None,
                 columns: list[str]) -> Iterator[dict[str, Any]]:
        if stream.name == "issues":
            yield from self._issues(stream.extra["fields"], spec, bound, columns)
        elif stream.name == "projects":
            for page in offset_pages(self.client, "/rest/api/3/project/search", what="list Jira projects",
                                     items=lambda p: list(p.get("values", [])), page_size=50):
                yield from (_renamed(p, PROJECT_FIELDS) for p in page)
        elif stream.name == "users":
            for page in offset_pages(self.client, "/rest/api/3/users/search", what="list Jira users",
                                     items=lambda p: list(p), page_size=PAGE, short_page_ends=False):
                yield from (_renamed(u, USER_FIELDS) for u in page)
        else:
            yield from self._worklogs(bound)

    # -- issues ---------------------------------------------------------------

    def _timezone(self) -> ZoneInfo:
        me = self.client.json("GET", "/rest/api/3/myself", what="read the Jira account's time zone")
        try:
            return ZoneInfo(str(me.get("timeZone") or "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    def _issues(self, fields: list[JiraField], spec: StreamSpec, bound: tuple[str, Any] | None,
                columns: list[str]) -> Iterator[dict[str, Any]]:
        by_column = {f.column: f for f in fields}
        cursor = by_column[spec.cursor_field] if spec.cursor_field in by_column else by_column.get("updated")
        order = cursor.id if cursor is not None else "id"
        wanted = [by_column[c] for c in columns if c in by_column]
        ids = sorted({f.id for f in wanted} | ({order} if cursor is not None else set()))
        zone = self._timezone()
        base = [f"project in ({', '.join(self.config.projects)})"] if self.config.projects else []
        low: datetime | None = None
        upper: datetime | None = None
        if spec.sync_mode is not SyncMode.FULL_REFRESH and cursor is not None:
            low = _minute(bound[1]) if bound is not None else None
            upper = _minute(self.client.server_now())

        def within(issue: dict[str, Any]) -> bool:
            if bound is None or cursor is None:
                return True
            value = issue.get("fields", {}).get(cursor.id)
            if value is None:
                return False
            exact = parse_timestamp(value)
            return bool(exact >= bound[1] if bound[0] == ">=" else exact > bound[1])

        def row(issue: dict[str, Any]) -> dict[str, Any]:
            values = issue.get("fields", {})
            return {"id": issue["id"], "key": issue.get("key"), **{f.column: plain(values.get(f.id), f)
                                                                     for f in wanted}}

        emitted: set[str] = set()
        for issue in self._search(base, order, low, upper, ids, zone):
            if issue["id"] not in emitted and within(issue):
                emitted.add(issue["id"])
                yield row(issue)

    def _search(self, base: list[str], order: str, low: datetime | None, upper: datetime | None, ids: list[str],
                zone: ZoneInfo) -> Iterator[dict[str, Any]]:
        """Issues in ``order`` from the minute ``low`` to the minute ``upper`` (excluded), each query
        starting at the minute of the last issue the previous one returned."""

        def jql(since: datetime | None, until: datetime | None) -> str:
            clauses = list(base)
            if since is not None:
                clauses.append(f'{order} >= "{since.astimezone(zone).strftime(JQL_TIME)}"')
            if until is not None:
                clauses.append(f'{order} < "{until.astimezone(zone).strftime(JQL_TIME)}"')
            return " AND ".join(clauses) + f" ORDER BY {order} ASC, id ASC"

        def minute_of(issue: dict[str, Any]) -> datetime | None:
            value = issue.get("fields", {}).get(order)
            return _minute(parse_timestamp(value)) if value else None

        while True:
            body = {"jql": jql(low, upper), "fields": ids, "maxResults": PAGE}
            page = self.client.json("POST", "/rest/api/3/search/jql", what="search Jira issues", json=body)
            issues = page.get("issues", [])
            yield from issues
            if _next_token(page) is None or not issues:
                return
            first, last = minute_of(issues[0]), minute_of(issues[-1])
            if last is None:
                # No time to slice by: plain token paging (the first page comes again, its ids are skipped).
                for more in cursor_pages(self.client, "POST", "/rest/api/3/search/jql", what="search Jira issues",
                                         name="nextPageToken", body=body, next_cursor=_next_token):
                    yield from more.get("issues", [])
                return
            if first == last:
                # A whole page in one minute: page through that minute with its tokens.
                in_minute = {**body, "jql": jql(last, last + timedelta(minutes=1))}
                for more in cursor_pages(self.client, "POST", "/rest/api/3/search/jql", what="search Jira issues",
                                         name="nextPageToken", body=in_minute, next_cursor=_next_token):
                    yield from more.get("issues", [])
                low = last + timedelta(minutes=1)
            else:
                low = last

    # -- worklogs ---------------------------------------------------------------

    def _worklogs(self, bound: tuple[str, Any] | None) -> Iterator[dict[str, Any]]:
        since = 0
        if bound is not None:
            # `since` is exclusive; one millisecond less includes the bound for `>=`.
            since = int(bound[1].timestamp() * 1000) - (1 if bound[0] == ">=" else 0)
        for page in next_url_pages(self.client, "/rest/api/3/worklog/updated", what="list updated Jira worklogs",
                                   params={"since": since},
                                   next_url=lambda p: None if p.get("lastPage", True) else p.get("nextPage")):
            ids = [v["worklogId"] for v in page.get("values", [])]
            if not ids:
                continue
            found = self.client.json("POST", "/rest/api/3/worklog/list", what="read Jira worklogs", json={"ids": ids})
            rows = [_renamed(w, WORKLOG_FIELDS) | {"author_account_id": (w.get("author") or {}).get("accountId"),
                                                   "comment": plain(w.get("comment"), _COMMENT)} for w in found]
            rows.sort(key=lambda r: parse_timestamp(r["updated"]))
            for r in rows:
                if bound is None or (parse_timestamp(r["updated"]) >= bound[1] if bound[0] == ">="
                                     else parse_timestamp(r["updated"]) > bound[1]):
                    yield r


_COMMENT = JiraField("comment", "comment", pa.string(), "doc")


def _minute(value: datetime) -> datetime:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(second=0, microsecond=0)


def _next_token(page: Any) -> str | None:
    if not isinstance(page, dict) or page.get("isLast", True):
        return None
    token = page.get("nextPageToken")
    return str(token) if token else None
