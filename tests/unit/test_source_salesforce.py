"""The Salesforce source against a local server that follows Salesforce's documented APIs.

Reference pages the fake follows (see ``tidemark_testing.fake_vendors.salesforce``):
https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm,
https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_queryall.htm,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_record_count.htm,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm and
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_create_job.htm
(with ``query_get_one_job.htm`` and ``query_get_job_results.htm``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tidemark.connectors.base import StreamState
from tidemark.connectors.registry import get_connector
from tidemark.connectors.rest.salesforce import SalesforceConfig, SalesforceSource
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode
from tidemark_testing.connector_contract import rows_of
from tidemark_testing.fake_vendors.salesforce import STANDARD, FakeSalesforce, sf_field
from tidemark_testing.fake_vendors.server import serving

pytestmark = pytest.mark.unit

CLIENT_ID, SECRET, REFRESH = "3MVG9-client", "sf-client-SECRET", "5Aep861-REFRESH-SECRET"
T0 = datetime(2024, 6, 1, tzinfo=UTC)
ACCOUNT = [*STANDARD, sf_field("AnnualRevenue", "currency", precision=18, scale=2),
           sf_field("NumberOfEmployees", "int"), sf_field("Active__c", "boolean"), sf_field("Founded__c", "date")]


@pytest.fixture(scope="module")
def sf_server() -> Iterator[tuple[FakeSalesforce, str]]:
    fake = FakeSalesforce(CLIENT_ID, SECRET, REFRESH)
    with serving(fake.app) as uri:
        fake.uri = uri
        yield fake, uri


@pytest.fixture
def sf(sf_server: tuple[FakeSalesforce, str]) -> FakeSalesforce:
    fake = sf_server[0]
    fake.objects = {"Account": list(ACCOUNT)}
    fake.records.clear()
    fake.page_size, fake.expire_after, fake.revoked = 2000, None, False
    fake.queries.clear()
    fake.bulk_jobs.clear()
    fake.faults.__init__()  # type: ignore[misc]
    return fake


@pytest.fixture
def connect(sf_server: tuple[FakeSalesforce, str]) -> Iterator:  # type: ignore[type-arg]
    made: list[SalesforceSource] = []

    def make(**config: object) -> SalesforceSource:
        cfg = {"login_url": sf_server[1], "client_id": CLIENT_ID, "client_secret": SECRET, "refresh_token": REFRESH,
               "objects": ["Account"], "requests_per_second": 1000, **config}
        source = SalesforceSource(SalesforceConfig.model_validate(cfg))
        source.sleep = lambda _: None
        made.append(source)
        return source
    yield make
    for s in made:
        s.close()


def add_accounts(sf: FakeSalesforce, count: int, start: int = 1) -> None:
    for n in range(start, start + count):
        sf.put("Account", f"001xx{n:013d}", Name=f"Acme {n}", SystemModstamp=T0 + timedelta(minutes=n),
               AnnualRevenue=Decimal(f"{n}.25"), NumberOfEmployees=n, Active__c=n % 2 == 0,
               Founded__c=datetime(2000, 1, 1).date())


def incremental(mode: SyncMode = SyncMode.INCREMENTAL, **extra: object) -> StreamSpec:
    return StreamSpec(name="Account", sync_mode=mode, cursor_field="SystemModstamp", primary_key=["Id"],
                      **extra)  # type: ignore[arg-type]


def state(minutes: int) -> StreamState:
    return StreamState(cursor_field="SystemModstamp", cursor_value=(T0 + timedelta(minutes=minutes)).isoformat())


def names(rows: list[dict[str, object]]) -> list[object]:
    return [r["Name"] for r in rows]


def test_registered_as_salesforce_with_secrets_write_only() -> None:
    assert get_connector("salesforce") is SalesforceSource
    props = SalesforceConfig.model_json_schema()["properties"]
    assert props["client_secret"]["writeOnly"] is True
    assert SalesforceConfig.secret_fields() == ["client_secret", "refresh_token"]


def test_describe_gives_the_columns_and_their_types(sf: FakeSalesforce, connect) -> None:  # type: ignore[no-untyped-def]
    info = connect().discover().stream("Account")
    assert info is not None
    assert {c.name: c.type for c in info.columns} == {
        "Id": "string", "Name": "string", "SystemModstamp": "timestamp[us, tz=UTC]",
        "AnnualRevenue": "decimal128(18, 2)", "NumberOfEmployees": "int64", "Active__c": "bool",
        "Founded__c": "date32[day]"}
    assert info.primary_key == ["Id"]
    assert info.cursor_candidates == ["SystemModstamp", "Founded__c"]
    deleted = connect(include_deleted=True).discover().stream("Account")
    assert deleted is not None
    assert "IsDeleted" in deleted.column_names()


def test_full_refresh_follows_next_records_url(sf: FakeSalesforce, connect) -> None:  # type: ignore[no-untyped-def]
    add_accounts(sf, 250)
    sf.page_size = 100
    rows = rows_of(connect().read(StreamSpec(name="Account"), None))
    assert sorted(names(rows)) == sorted(f"Acme {n}" for n in range(1, 251))
    seven = next(r for r in rows if r["Name"] == "Acme 7")
    assert seven["AnnualRevenue"] == Decimal("7.25")
    assert seven["NumberOfEmployees"] == 7
    assert seven["Active__c"] is False
    assert seven["SystemModstamp"] == (T0 + timedelta(minutes=7)).replace(tzinfo=None)


def test_incremental_on_system_modstamp_with_a_lookback(sf: FakeSalesforce, connect) -> None:  # type: ignore[no-untyped-def]
    add_accounts(sf, 20)
    source = connect()
    rows = rows_of(source.read(incremental(columns=["Name"]), state(15)))
    assert names(rows) == [f"Acme {n}" for n in range(15, 21)]
    assert sf.queries[-1] == ("SELECT Name, SystemModstamp FROM Account WHERE SystemModstamp >= "
                              "2024-06-01T00:15:00.000Z ORDER BY SystemModstamp ASC")
    looked_back = rows_of(source.read(incremental(columns=["Name"], lookback=300), state(15)))
    assert names(looked_back) == [f"Acme {n}" for n in range(10, 21)]
    appended = rows_of(source.read(incremental(SyncMode.INCREMENTAL_APPEND, columns=["Name"]), state(15)))
    assert names(appended) == [f"Acme {n}" for n in range(16, 21)]


def test_deleted_records_come_through_query_all_when_asked(sf: FakeSalesforce, connect) -> None:  # type: ignore[no-untyped-def]
    add_accounts(sf, 3)
    sf.put("Account", "001xx0000000000002", IsDeleted=True)
    plain = rows_of(connect().read(StreamSpec(name="Account", columns=["Name"]), None))
    assert sorted(names(plain)) == ["Acme 1", "Acme 3"]
    rows = rows_of(connect(include_deleted=True).read(StreamSpec(name="Account", columns=["Name", "IsDeleted"]),
                                                      None))
    assert sorted((r["Name"], r["IsDeleted"]) for r in rows) == [("Acme 1", False), ("Acme 2", True),
                                                                  ("Acme 3", False)]
    assert "/queryAll" not in sf.queries[-1]  # the endpoint is in the URL, the SOQL is the same


def test_an_access_token_that_expires_mid_run_is_refreshed(sf: FakeSalesforce, connect) -> None:  # type: ignore[no-untyped-def]
    add_accounts(sf, 500)
    sf.page_size, sf.expire_after = 50, 4
    rows = rows_of(connect().read(StreamSpec(name="Account", columns=["Name"]), None))
    assert len(rows) == 500
    assert len(sf.tokens) >= 3


def test_client_credentials_need_no_refresh_token(sf: FakeSalesforce, connect) -> None:  # type: ignore[no-untyped-def]
    add_accounts(sf, 2)
    assert len(rows_of(connect(refresh_token=None).read(StreamSpec(name="Account"), None))) == 2


def test_a_revoked_refresh_token_asks_to_reconnect(sf: FakeSalesforce, connect) -> None:  # type: ignore[no-untyped-def]
    sf.revoked = True
    with pytest.raises(SourceError) as caught:
        connect().check()
    assert caught.value.kind is FailureKind.CONFIG
    assert caught.value.detail["field"] == "refresh_token"
    assert "reconnect the Salesforce connection" in caught.value.message
    assert REFRESH not in caught.value.message


def test_large_objects_go_through_bulk_api_2(sf: FakeSalesforce, connect) -> None:  # type: ignore[no-untyped-def]
    add_accounts(sf, 250)
    source = connect(bulk_threshold=100, bulk_page_records=60)
    polls: list[float] = []
    source.sleep = polls.append
    rows = rows_of(source.read(incremental(), state(200)))
    assert sorted(r["NumberOfEmployees"] for r in rows) == list(range(200, 251))
    assert sf.bulk_jobs == [
        "SELECT Id, Name, SystemModstamp, AnnualRevenue, NumberOfEmployees, Active__c, Founded__c FROM Account "
        "WHERE SystemModstamp >= 2024-06-01T03:20:00.000Z"]
    assert sf.queries == []
    one = next(r for r in rows if r["NumberOfEmployees"] == 210)
    assert one["AnnualRevenue"] == Decimal("210.25")
    assert one["Active__c"] is True
    assert one["SystemModstamp"] == (T0 + timedelta(minutes=210)).replace(tzinfo=None)
    assert polls == [5.0, 5.0]  # UploadComplete, InProgress, then JobComplete


def test_records_updated_during_the_sync_come_in_the_next_run(sf: FakeSalesforce, connect) -> None:  # type: ignore[no-untyped-def]
    add_accounts(sf, 300)
    sf.page_size = 100
    source = connect(batch_size=50)
    reader = source.read(incremental(columns=["Id", "Name", "SystemModstamp"]), None)
    first = rows_of([next(reader), next(reader), next(reader)])  # 150 records: the second page was fetched
    sf.put("Account", "001xx0000000000250", Name="renamed", SystemModstamp=datetime.now(UTC))
    first += rows_of(reader)
    assert len(first) == 300
    assert "renamed" not in names(first)  # the query's results were fixed when it started
    later = rows_of(source.read(incremental(columns=["Name"]), state(300)))
    assert names(later) == ["Acme 300", "renamed"]


def test_a_field_added_between_runs_appears_in_the_next_run(sf: FakeSalesforce, connect) -> None:  # type: ignore[no-untyped-def]
    add_accounts(sf, 2)
    assert "Tier__c" not in connect().arrow_schema(StreamSpec(name="Account")).names
    sf.objects["Account"].append(sf_field("Tier__c", "picklist"))
    sf.put("Account", "001xx0000000000001", Tier__c="Gold")
    rows = rows_of(connect().read(StreamSpec(name="Account", columns=["Name", "Tier__c"]), None))
    assert sorted((r["Name"], r["Tier__c"]) for r in rows) == [("Acme 1", "Gold"), ("Acme 2", None)]


def test_a_5xx_burst_is_retried(sf: FakeSalesforce, connect) -> None:  # type: ignore[no-untyped-def]
    add_accounts(sf, 5)
    source = connect()
    source.discover()
    sf.faults.server_errors = 3
    assert len(rows_of(source.read(StreamSpec(name="Account"), None))) == 5


def test_a_field_removed_since_discovery_says_to_discover_again(sf: FakeSalesforce, connect) -> None:  # type: ignore[no-untyped-def]
    add_accounts(sf, 1)
    source = connect()
    source.discover()
    sf.objects["Account"] = [f for f in sf.objects["Account"] if f["name"] != "Founded__c"]
    with pytest.raises(SourceError) as caught:
        list(source.read(StreamSpec(name="Account"), None))
    assert caught.value.kind is FailureKind.CONFIG
    assert "No such column 'Founded__c'" in caught.value.message
    assert "discover the connection again" in caught.value.message
