"""The Jira source against a local server that follows Jira Cloud's documented REST API v3.

Reference pages the fake follows (see ``tidemark_testing.fake_vendors.jira``):
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-fields/,
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/ (``/search/jql``, token paging),
https://support.atlassian.com/jira-software-cloud/docs/jql-fields/ (minute precision, user time zone),
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-projects/,
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-users/,
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-worklogs/ and
https://developer.atlassian.com/cloud/jira/platform/rate-limiting/.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tidemark.connectors.base import StreamState
from tidemark.connectors.registry import get_connector
from tidemark.connectors.rest.jira import JiraConfig, JiraSource
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode
from tidemark_testing.connector_contract import rows_of
from tidemark_testing.fake_vendors.jira import FakeJira, at, custom_field, system_field
from tidemark_testing.fake_vendors.server import serving

pytestmark = pytest.mark.unit

EMAIL, TOKEN = "bot@example.com", "ATATT3xFfGF0-SECRET-token"
FIELDS = [system_field("summary", "Summary", "string"), system_field("status", "Status", "status"),
          system_field("assignee", "Assignee", "user"), system_field("created", "Created", "datetime"),
          system_field("updated", "Updated", "datetime"), system_field("labels", "Labels", "array"),
          custom_field(10016, "Story Points", "number"), custom_field(10020, "Team", "option", "select"),
          custom_field(10030, "Team", "string", "textfield"), custom_field(10040, "summary", "string", "textfield"),
          {"id": "thumbnail", "name": "Images", "custom": False}]


@pytest.fixture(scope="module")
def jira_server() -> Iterator[tuple[FakeJira, str]]:
    fake = FakeJira(EMAIL, TOKEN, time_zone="Europe/Berlin")
    with serving(fake.app) as uri:
        yield fake, uri


@pytest.fixture
def jira(jira_server: tuple[FakeJira, str]) -> FakeJira:
    fake = jira_server[0]
    fake.fields = [dict(f) for f in FIELDS]
    fake.issues.clear()
    fake.worklogs.clear()
    fake.projects, fake.users = [], []
    fake.searches.clear()
    fake.on_search = None
    fake.worklog_page = 1000
    fake.faults.__init__()  # type: ignore[misc]
    return fake


@pytest.fixture
def connect(jira_server: tuple[FakeJira, str]) -> Iterator:  # type: ignore[type-arg]
    made: list[JiraSource] = []

    def make(**config: object) -> JiraSource:
        cfg = {"base_url": jira_server[1], "email": EMAIL, "api_token": TOKEN, "requests_per_second": 1000, **config}
        source = JiraSource(JiraConfig.model_validate(cfg))
        source.sleep = lambda _: None
        made.append(source)
        return source
    yield make
    for s in made:
        s.close()


def add_issues(jira: FakeJira, count: int, start: int = 1, when: object = None) -> None:
    for n in range(start, start + count):
        jira.put_issue(10_000 + n, f"PRJ-{n}", summary=f"issue {n}", updated=when or at(n), created=at(0),
                       status={"self": "", "name": "To Do", "id": "1", "statusCategory": {"key": "new"}},
                       assignee={"accountId": f"acc-{n % 3}", "displayName": f"User {n % 3}"},
                       labels=["a", "b"], customfield_10016=float(n) / 2,
                       customfield_10020={"self": "", "value": "Platform", "id": "10021"})


def incremental(mode: SyncMode = SyncMode.INCREMENTAL, **extra: object) -> StreamSpec:
    return StreamSpec(name="issues", sync_mode=mode, cursor_field="updated", primary_key=["id"],
                      **extra)  # type: ignore[arg-type]


def state(value: datetime) -> StreamState:
    return StreamState(cursor_field="updated", cursor_value=value.isoformat())


def test_registered_as_jira_with_the_api_token_write_only() -> None:
    assert get_connector("jira") is JiraSource
    assert JiraConfig.model_json_schema()["properties"]["api_token"]["writeOnly"] is True
    assert JiraConfig.secret_fields() == ["api_token"]


def test_custom_fields_are_columns_named_by_their_display_names(jira: FakeJira, connect) -> None:  # type: ignore[no-untyped-def]
    catalog = connect().discover()
    issues = catalog.stream("issues")
    assert issues is not None
    assert {c.name: c.type for c in issues.columns} == {
        "id": "int64", "key": "string", "summary": "string", "status": "string", "assignee": "string",
        "created": "timestamp[us, tz=UTC]", "updated": "timestamp[us, tz=UTC]", "labels": "string",
        "Story Points": "double", "Team (customfield_10020)": "string", "Team (customfield_10030)": "string",
        "summary (customfield_10040)": "string"}
    assert issues.cursor_candidates == ["created", "updated"]
    assert [s.name for s in catalog.streams] == ["issues", "projects", "users", "worklogs"]


def test_full_refresh_pages_through_jql_search(jira: FakeJira, connect) -> None:  # type: ignore[no-untyped-def]
    add_issues(jira, 250)
    rows = rows_of(connect().read(StreamSpec(name="issues"), None))
    assert sorted(r["id"] for r in rows) == [10_000 + n for n in range(1, 251)]
    seven = next(r for r in rows if r["key"] == "PRJ-7")
    assert seven["status"] == "To Do"
    assert seven["assignee"] == "acc-1"
    assert seven["Story Points"] == 3.5
    assert seven["Team (customfield_10020)"] == "Platform"
    assert seven["labels"] == '["a", "b"]'
    assert seven["updated"] == at(7).replace(tzinfo=None)


def test_incremental_asks_jql_for_the_minute_in_the_users_zone_and_keeps_the_exact_bound(
    jira: FakeJira, connect  # type: ignore[no-untyped-def]
) -> None:
    boundary = at(5) + timedelta(seconds=30)  # 00:05:30 UTC, 02:05:30 in Berlin
    for n, seconds in enumerate((10, 30, 50, 90), start=1):
        jira.put_issue(n, f"PRJ-{n}", summary="s", updated=at(5) + timedelta(seconds=seconds))
    source = connect()
    both = rows_of(source.read(incremental(columns=["id"]), state(boundary)))
    assert sorted(r["id"] for r in both) == [2, 3, 4]
    assert 'updated >= "2024/05/01 02:05"' in jira.searches[-1]
    append = rows_of(source.read(incremental(SyncMode.INCREMENTAL_APPEND, columns=["id"]), state(boundary)))
    assert sorted(r["id"] for r in append) == [3, 4]
    lookback = rows_of(source.read(incremental(columns=["id"], lookback=60), state(boundary)))
    assert sorted(r["id"] for r in lookback) == [1, 2, 3, 4]


def test_incremental_reads_in_cursor_order_past_many_pages(jira: FakeJira, connect) -> None:  # type: ignore[no-untyped-def]
    add_issues(jira, 330)
    rows = rows_of(connect().read(incremental(columns=["id", "updated"]), None))
    assert [r["id"] for r in rows] == [10_000 + n for n in range(1, 331)]


def test_more_issues_in_one_minute_than_a_page_are_each_read_once(jira: FakeJira, connect) -> None:  # type: ignore[no-untyped-def]
    add_issues(jira, 20)
    add_issues(jira, 260, start=21, when=at(30) + timedelta(seconds=5))
    add_issues(jira, 20, start=281, when=at(40))
    rows = rows_of(connect().read(incremental(columns=["id"]), state(at(1))))
    assert Counter(r["id"] for r in rows) == Counter(10_000 + n for n in range(1, 301))


def test_issues_updated_during_the_sync_are_read_once_now_and_again_next_run(
    jira: FakeJira, connect  # type: ignore[no-untyped-def]
) -> None:
    add_issues(jira, 400)

    def update(search_number: int) -> None:
        if search_number == 2:  # after the first 100
            for n in (5, 150):
                jira.put_issue(10_000 + n, f"PRJ-{n}", summary=f"changed {n}", updated=datetime.now(UTC))

    jira.on_search = update
    source = connect()
    first = rows_of(source.read(incremental(columns=["id", "summary", "updated"]), None))
    counts = Counter(r["id"] for r in first)
    assert max(counts.values()) == 1
    assert set(counts) == {10_000 + n for n in range(1, 401)} - {10_150}
    jira.on_search = None
    last = max(r["updated"] for r in first).replace(tzinfo=UTC)
    # The next run starts after this minute has passed.
    jira.put_issue(10_005, "PRJ-5", updated=datetime.now(UTC) - timedelta(minutes=1))
    jira.put_issue(10_150, "PRJ-150", updated=datetime.now(UTC) - timedelta(minutes=1))
    second = rows_of(source.read(incremental(columns=["id", "summary"]), state(last)))
    assert {r["id"]: r["summary"] for r in second} == {10_400: "issue 400", 10_005: "changed 5",
                                                       10_150: "changed 150"}


def test_a_custom_field_added_between_runs_appears_in_the_next_run(jira: FakeJira, connect) -> None:  # type: ignore[no-untyped-def]
    add_issues(jira, 2)
    assert "Severity" not in connect().arrow_schema(StreamSpec(name="issues")).names
    jira.fields.append(custom_field(10050, "Severity", "option", "select"))
    jira.put_issue(10_002, "PRJ-2", customfield_10050={"value": "High", "id": "3"})
    rows = rows_of(connect().read(StreamSpec(name="issues", columns=["key", "Severity"]), None))
    assert sorted((r["key"], r["Severity"]) for r in rows) == [("PRJ-1", None), ("PRJ-2", "High")]


def test_projects_users_and_worklogs_are_streams(jira: FakeJira, connect) -> None:  # type: ignore[no-untyped-def]
    jira.projects = [{"id": str(i), "key": f"P{i}", "name": f"Project {i}", "projectTypeKey": "software",
                      "style": "next-gen", "simplified": True, "isPrivate": False} for i in range(1, 121)]
    jira.users = [{"accountId": f"acc-{i}", "accountType": "atlassian", "displayName": f"U{i}", "active": True,
                   "_hidden": i % 7 == 0} for i in range(1, 231)]
    for w in range(1, 11):
        jira.put_worklog(w, 10_001, "acc-1", at(w), 600 * w, at(100 + w), comment=f"work {w}")
    jira.worklog_page = 3
    source = connect()
    projects = rows_of(source.read(StreamSpec(name="projects"), None))
    assert [p["key"] for p in projects] == [f"P{i}" for i in range(1, 121)]
    users = rows_of(source.read(StreamSpec(name="users", columns=["account_id"]), None))
    assert [u["account_id"] for u in users] == [f"acc-{i}" for i in range(1, 231) if i % 7]
    spec = StreamSpec(name="worklogs", sync_mode=SyncMode.INCREMENTAL, cursor_field="updated", primary_key=["id"])
    logs = rows_of(source.read(spec, StreamState(cursor_field="updated", cursor_value=at(104).isoformat())))
    assert [w["id"] for w in logs] == [4, 5, 6, 7, 8, 9, 10]
    assert logs[0]["time_spent_seconds"] == 2400
    assert logs[0]["author_account_id"] == "acc-1"
    assert '"text": "work 4"' in logs[0]["comment"]


def test_a_429_storm_with_retry_after_is_waited_out(jira: FakeJira, connect) -> None:  # type: ignore[no-untyped-def]
    add_issues(jira, 120)
    jira.faults.too_many, jira.faults.retry_after = 5, "7"
    source = connect()
    waits: list[float] = []
    source.sleep = waits.append
    assert len(rows_of(source.read(StreamSpec(name="issues", columns=["id"]), None))) == 120
    assert waits == [7.0] * 5


def test_a_wrong_api_token_says_where_to_make_one(jira: FakeJira, connect) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SourceError) as caught:
        connect(api_token="ATATT-wrong-token").check()
    assert caught.value.kind is FailureKind.CONFIG
    assert "id.atlassian.com/manage-profile/security/api-tokens" in caught.value.message
    assert "ATATT-wrong-token" not in caught.value.message


def test_projects_limit_the_issues_and_must_be_keys(jira: FakeJira, connect) -> None:  # type: ignore[no-untyped-def]
    add_issues(jira, 3)
    jira.put_issue(50_001, "OPS-1", summary="ops", updated=at(9))
    rows = rows_of(connect(projects=["OPS"]).read(StreamSpec(name="issues", columns=["key"]), None))
    assert rows == [{"key": "OPS-1"}]
    assert jira.searches[-1].startswith("project in (OPS)")
    with pytest.raises(ValueError, match="is not a Jira project key"):
        JiraConfig.model_validate({"base_url": "https://x.atlassian.net", "email": EMAIL, "api_token": TOKEN,
                                   "projects": ['PRJ) OR project = "X']})
