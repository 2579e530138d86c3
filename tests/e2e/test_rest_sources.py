"""REST sources through the platform: `tidemark up` as a process, the CLI against it, a fake vendor on loopback.
connection (secrets never shown back) → check → discover → incremental pipeline → run → Iceberg table equal
to what the fake holds; then a field added and records updated in the fake, and a second run that writes only
the changed records, the table equal again.

The fakes follow the vendors' documented APIs; the reference pages are named in
``tidemark_testing.fake_vendors.salesforce`` (describe, SOQL query with ``nextRecordsUrl``, OAuth refresh token)
and ``tidemark_testing.fake_vendors.jira`` (``/rest/api/3/field``, ``/rest/api/3/search/jql``, ``/myself``).
HubSpot's end-to-end test lives with the CLI tests (``test_embedded_and_cli.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.fixtures.embedded import Embedded, embedded, ok
from tidemark.lakehouse import Lakehouse, LakehouseSettings
from tidemark_testing.fake_vendors.jira import FakeJira, custom_field, system_field
from tidemark_testing.fake_vendors.salesforce import STANDARD, FakeSalesforce, sf_field
from tidemark_testing.fake_vendors.server import serving

pytestmark = pytest.mark.e2e
__all__ = ["embedded"]  # the platform fixture: one per module, shared by both vendors' tests

START = datetime(2024, 7, 1, tzinfo=UTC)


def run(embedded: Embedded, pipeline: str) -> dict[str, Any]:
    return dict(json.loads(ok(embedded.cli("--json", "pipelines", "run", pipeline, "--wait")).output))


def table_rows(embedded: Embedded, table: str, key: str) -> list[dict[str, Any]]:
    lake = Lakehouse(LakehouseSettings().resolve(embedded.home))
    return sorted(lake.catalog.load_table(table).scan().to_arrow().to_pylist(), key=lambda r: r[key])


def created_and_checked(embedded: Embedded, name: str, kind: str, secrets: list[str], *settings: str) -> None:
    ok(embedded.cli("connections", "create", "--name", name, "--type", kind, *(f"--set={s}" for s in settings)))
    shown = json.dumps(json.loads(ok(embedded.cli("--json", "connections", "show", name)).output))
    for secret in secrets:
        assert secret not in shown
    assert "succeeded" in ok(embedded.cli("connections", "check", name)).output


def test_a_salesforce_pipeline_loads_what_the_org_holds_and_follows_its_changes(embedded: Embedded) -> None:
    client_secret, refresh = "sf-e2e-client-SECRET", "5Aep861-e2e-REFRESH"
    org = FakeSalesforce("3MVG9-e2e", client_secret, refresh)
    org.objects["Account"] = [*STANDARD, sf_field("AnnualRevenue", "currency", precision=18, scale=2)]
    org.page_size = 100  # 250 records: three pages through nextRecordsUrl
    for n in range(1, 251):
        org.put("Account", f"001xx{n:013d}", Name=f"Acme {n}", SystemModstamp=START + timedelta(minutes=n),
                AnnualRevenue=Decimal(f"{n}.25"))

    def expected(columns: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{c: r.get(c) for c in ("Id", *columns)} for _, r in sorted(org.records["Account"].items())]

    with serving(org.app) as uri:
        org.uri = uri  # the token response's instance_url
        created_and_checked(embedded, "sf-e2e", "salesforce", [client_secret, refresh],
                            f"login_url={uri}", "client_id=3MVG9-e2e", f"client_secret={client_secret}",
                            f"refresh_token={refresh}", 'objects=["Account"]')
        catalog = json.loads(ok(embedded.cli("--json", "connections", "discover", "sf-e2e")).output)
        [account] = catalog["streams"]
        assert account["primary_key"] == ["Id"]
        assert "SystemModstamp" in account["cursor_candidates"]
        ok(embedded.cli("pipelines", "create", "--name", "sf-e2e", "--connection", "sf-e2e", "--stream", "Account",
                        "--mode", "incremental", "--cursor-field", "SystemModstamp", "--primary-key", "Id",
                        "--namespace", "salesforce"))
        first = run(embedded, "sf-e2e")
        assert (first["status"], first["rows_written"]) == ("succeeded", 250), first
        table = first["streams"][0]["table"]
        assert table_rows(embedded, table, "Id") == expected(("Name", "SystemModstamp", "AnnualRevenue"))

        org.objects["Account"].append(sf_field("Tier__c", "string"))
        later = START + timedelta(days=1)
        org.put("Account", f"001xx{7:013d}", Tier__c="gold", AnnualRevenue=Decimal("99.50"), SystemModstamp=later)
        org.put("Account", f"001xx{251:013d}", Name="Acme new", SystemModstamp=later)
        second = run(embedded, "sf-e2e")
        # From the stored cursor, inclusive: the boundary record (250), the updated one, the new one are
        # read; the boundary record is unchanged in the table, so only the other two are written.
        assert (second["status"], second["rows_read"], second["rows_written"]) == ("succeeded", 3, 2), second
        assert table_rows(embedded, table, "Id") == expected(("Name", "SystemModstamp", "AnnualRevenue", "Tier__c"))


def test_a_jira_pipeline_loads_what_the_site_holds_and_follows_its_changes(embedded: Embedded) -> None:
    email, token = "bot@example.com", "ATATT3x-e2e-SECRET-token"
    site = FakeJira(email, token, time_zone="Europe/Berlin")  # JQL minutes are in the account's zone
    site.fields = [system_field("summary", "Summary", "string"), system_field("updated", "Updated", "datetime"),
                   custom_field(10016, "Story Points", "number")]
    for n in range(1, 251):  # more than one page (100) of the JQL search
        site.put_issue(10_000 + n, f"PRJ-{n}", summary=f"issue {n}", updated=START + timedelta(minutes=n),
                       customfield_10016=n / 2)

    def expected(columns: dict[str, str]) -> list[dict[str, Any]]:
        convert: dict[str, Callable[[Any], Any]] = {"updated": datetime.fromisoformat}
        return [{"id": i, "key": issue["key"],
                 **{name: None if (raw := issue["fields"].get(fid)) is None else convert.get(fid, lambda v: v)(raw)
                    for name, fid in columns.items()}}
                for i, issue in sorted(site.issues.items())]

    columns = {"summary": "summary", "updated": "updated", "Story Points": "customfield_10016"}
    with serving(site.app) as uri:
        created_and_checked(embedded, "jira-e2e", "jira", [token],
                            f"base_url={uri}", f"email={email}", f"api_token={token}")
        catalog = json.loads(ok(embedded.cli("--json", "connections", "discover", "jira-e2e")).output)
        issues = next(s for s in catalog["streams"] if s["name"] == "issues")
        assert issues["primary_key"] == ["id"]
        assert [c["name"] for c in issues["columns"]] == ["id", "key", "summary", "updated", "Story Points"]
        ok(embedded.cli("pipelines", "create", "--name", "jira-e2e", "--connection", "jira-e2e", "--stream", "issues",
                        "--mode", "incremental", "--cursor-field", "updated", "--primary-key", "id",
                        "--namespace", "jira"))
        first = run(embedded, "jira-e2e")
        assert (first["status"], first["rows_written"]) == ("succeeded", 250), first
        table = first["streams"][0]["table"]
        assert table_rows(embedded, table, "id") == expected(columns)

        site.fields.append(custom_field(10050, "Team", "string", "textfield"))
        later = START + timedelta(days=1, seconds=30)  # mid-minute: the exact bound is applied client side
        site.put_issue(10_007, "PRJ-7", customfield_10050="Platform", summary="issue 7, edited", updated=later)
        site.put_issue(10_251, "PRJ-251", summary="issue 251", updated=later)
        second = run(embedded, "jira-e2e")
        # From the stored cursor, inclusive: the boundary issue (250), the updated one, the new one are
        # read; the boundary issue is unchanged in the table, so only the other two are written.
        assert (second["status"], second["rows_read"], second["rows_written"]) == ("succeeded", 3, 2), second
        assert table_rows(embedded, table, "id") == expected({**columns, "Team": "customfield_10050"})
