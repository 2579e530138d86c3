"""The HubSpot source against a local server that follows HubSpot's documented API.

Reference pages the fake follows (see ``tidemark_testing.fake_vendors.hubspot``):
https://developers.hubspot.com/docs/api/crm/properties,
https://developers.hubspot.com/docs/api/crm/understanding-the-crm,
https://developers.hubspot.com/docs/api/crm/search (10,000-result window, 200 per page),
https://developers.hubspot.com/docs/api/crm/associations,
https://developers.hubspot.com/docs/api/usage-details#rate-limits and
https://developers.hubspot.com/docs/api/error-handling.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from tidemark.connectors.base import StreamState
from tidemark.connectors.registry import get_connector
from tidemark.connectors.rest.hubspot import HubSpotConfig, HubSpotSource
from tidemark.errors import FailureKind, SourceError
from tidemark.events import StreamSpec, SyncMode
from tidemark_testing.connector_contract import CONTRACT_ROWS, ContractTable, SourceContract, rows_of
from tidemark_testing.fake_vendors.hubspot import FakeHubSpot, HubSpotObject, prop
from tidemark_testing.fake_vendors.server import serving

pytestmark = pytest.mark.unit

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
T0 = datetime(2024, 5, 1, tzinfo=UTC)
CONTACT_PROPS = [prop("email", "string"), prop("firstname", "string"), prop("lifecyclestage", "enumeration"),
                 prop("num_employees", "number"), prop("hs_is_unworked", "bool"), prop("birthday", "date"),
                 prop("lastmodifieddate", "datetime"), prop("hs_object_id", "number")]


@pytest.fixture(scope="module")
def hub_server() -> Iterator[tuple[FakeHubSpot, str]]:
    hub = FakeHubSpot(TOKEN)
    with serving(hub.app) as uri:
        yield hub, uri


@pytest.fixture
def hub(hub_server: tuple[FakeHubSpot, str]) -> FakeHubSpot:
    fake = hub_server[0]
    fake.objects.clear()
    fake.associations.clear()
    fake.faults.__init__()  # type: ignore[misc]
    fake.on_search = None
    fake.searches = 0
    fake.missing_scopes = set()
    fake.objects["contacts"] = HubSpotObject(list(CONTACT_PROPS))
    fake.objects["companies"] = HubSpotObject([prop("name", "string"), prop("hs_lastmodifieddate", "datetime")])
    return fake


@pytest.fixture
def sources(hub_server: tuple[FakeHubSpot, str]) -> Iterator[list[HubSpotSource]]:
    made: list[HubSpotSource] = []
    yield made
    for s in made:
        s.close()


@pytest.fixture
def connect(hub_server: tuple[FakeHubSpot, str], sources: list[HubSpotSource]):  # type: ignore[no-untyped-def]
    def make(**config: object) -> HubSpotSource:
        cfg = {"access_token": TOKEN, "base_url": hub_server[1], "objects": ["contacts"],
               "requests_per_second": 1000, **config}
        source = HubSpotSource(HubSpotConfig.model_validate(cfg))
        source.sleep = lambda _: None
        sources.append(source)
        return source
    return make


def add_contacts(hub: FakeHubSpot, count: int, start: int = 1, step: timedelta = timedelta(seconds=1)) -> None:
    for i in range(start, start + count):
        hub.put("contacts", i, email=f"c{i}@example.com", firstname=f"C{i}", num_employees=i * 10,
                lastmodifieddate=T0 + step * i, hs_is_unworked="true" if i % 2 else "false", birthday="1990-01-02")


def incremental(cursor: str = "lastmodifieddate", **extra: object) -> StreamSpec:
    return StreamSpec(name="contacts", sync_mode=SyncMode.INCREMENTAL, cursor_field=cursor, primary_key=["id"],
                      **extra)  # type: ignore[arg-type]


class TestHubSpotContract(SourceContract):
    @pytest.fixture
    def contract_table(self, hub: FakeHubSpot, connect) -> ContractTable:  # type: ignore[no-untyped-def]
        hub.objects["p_contract_rows"] = HubSpotObject(
            [prop("name", "string"), prop("amount", "number"), prop("updated_at", "datetime")])
        for row in CONTRACT_ROWS:
            hub.put("p_contract_rows", row["id"], name=row["name"], amount=row["amount"],
                    updated_at=row["updated_at"])
        return ContractTable(connect(objects=["p_contract_rows"]), "p_contract_rows")


def test_registered_as_hubspot_with_the_token_write_only() -> None:
    assert get_connector("hubspot") is HubSpotSource
    schema = HubSpotConfig.model_json_schema()
    assert schema["properties"]["access_token"]["writeOnly"] is True
    assert HubSpotConfig.secret_fields() == ["access_token"]


def test_discover_types_columns_from_the_properties_api(hub: FakeHubSpot, connect) -> None:  # type: ignore[no-untyped-def]
    catalog = connect(associations=["contacts.companies"]).discover()
    contacts = catalog.stream("contacts")
    assert contacts is not None
    types = {c.name: c.type for c in contacts.columns}
    assert types == {"id": "int64", "email": "string", "firstname": "string", "lifecyclestage": "string",
                     "num_employees": "decimal128(38, 9)", "hs_is_unworked": "bool", "birthday": "date32[day]",
                     "lastmodifieddate": "timestamp[us, tz=UTC]", "hs_object_id": "decimal128(38, 9)"}
    assert contacts.primary_key == ["id"]
    assert contacts.cursor_candidates == ["id", "num_employees", "birthday", "lastmodifieddate", "hs_object_id"]
    links = catalog.stream("contacts_to_companies")
    assert links is not None
    assert links.primary_key == ["from_id", "to_id", "association_type_id"]


def test_full_refresh_pages_through_the_list_api(hub: FakeHubSpot, connect) -> None:  # type: ignore[no-untyped-def]
    add_contacts(hub, 250)
    source = connect(batch_size=64)
    spec = StreamSpec(name="contacts", columns=["id", "email", "num_employees", "hs_is_unworked", "birthday"])
    batches = list(source.read(spec, None))
    assert max(b.num_rows for b in batches) == 64
    rows = rows_of(batches)
    assert [r["id"] for r in rows] == list(range(1, 251))
    assert rows[6] == {"id": 7, "email": "c7@example.com", "num_employees": Decimal(70), "hs_is_unworked": True,
                       "birthday": datetime(1990, 1, 2).date()}
    assert source.client.requests == 1 + 3  # the properties, then 100 records a page


def test_incremental_reads_past_the_search_window_in_cursor_order(hub: FakeHubSpot, connect) -> None:  # type: ignore[no-untyped-def]
    add_contacts(hub, 10_300)
    source = connect()
    rows = rows_of(source.read(incremental(columns=["id", "lastmodifieddate"]), None))
    assert len(rows) == 10_300
    assert len({r["id"] for r in rows}) == 10_300
    cursors = [r["lastmodifieddate"] for r in rows]
    assert cursors == sorted(cursors)
    since = StreamState(cursor_field="lastmodifieddate", cursor_value=(T0 + timedelta(seconds=10_000)).isoformat())
    later = rows_of(source.read(incremental(columns=["id"]), since))
    assert [r["id"] for r in later] == list(range(10_000, 10_301))


def test_more_records_with_one_timestamp_than_a_page_are_each_read_once(hub: FakeHubSpot, connect) -> None:  # type: ignore[no-untyped-def]
    add_contacts(hub, 50)
    add_contacts(hub, 450, start=51, step=timedelta(0))  # all at T0
    add_contacts(hub, 30, start=501)
    rows = rows_of(connect().read(incremental(columns=["id"]), None))
    assert Counter(r["id"] for r in rows) == Counter(range(1, 531))


def test_records_updated_during_the_sync_are_read_once_now_and_again_next_run(
    hub: FakeHubSpot, connect  # type: ignore[no-untyped-def]
) -> None:
    add_contacts(hub, 1000)

    def update(search_number: int) -> None:
        if search_number == 3:  # pages 1-2 were read: ids 1..400
            for i in (5, 6, 700, 701):
                hub.put("contacts", i, firstname=f"changed {i}", lastmodifieddate=datetime.now(UTC))

    hub.on_search = update
    source = connect()
    first = rows_of(source.read(incremental(columns=["id", "firstname", "lastmodifieddate"]), None))
    counts = Counter(r["id"] for r in first)
    assert max(counts.values()) == 1, "a record came twice in one run"
    assert set(counts) == set(range(1, 1001)) - {700, 701}, "only records moved past the run's end may wait"
    hub.on_search = None
    time.sleep(1.1)  # the next run starts later: a read ends at the vendor's clock, to the second
    state = StreamState(cursor_field="lastmodifieddate", cursor_value=max(r["lastmodifieddate"] for r in first))
    second = rows_of(source.read(incremental(columns=["id", "firstname"], lookback=60), state))
    assert {r["id"]: r["firstname"] for r in second}.items() >= {i: f"changed {i}" for i in (5, 6, 700, 701)}.items()


def test_a_property_added_between_runs_appears_in_the_next_run(hub: FakeHubSpot, connect) -> None:  # type: ignore[no-untyped-def]
    add_contacts(hub, 3)
    spec = StreamSpec(name="contacts")
    assert "favorite_color" not in connect().arrow_schema(spec).names
    hub.objects["contacts"].properties.append(prop("favorite_color", "enumeration"))
    hub.put("contacts", 2, favorite_color="teal")
    source = connect()
    assert source.arrow_schema(spec).field("favorite_color").type == pa.string()
    assert [r["favorite_color"] for r in rows_of(source.read(spec, None))] == [None, "teal", None]


def test_a_429_storm_and_a_5xx_burst_slow_the_read_but_lose_nothing(hub: FakeHubSpot, connect) -> None:  # type: ignore[no-untyped-def]
    add_contacts(hub, 300)
    hub.faults.too_many, hub.faults.retry_after, hub.faults.server_errors = 4, "2", 3  # 7 of 8 attempts
    source = connect()
    waits: list[float] = []
    source.sleep = waits.append
    rows = rows_of(source.read(StreamSpec(name="contacts", columns=["id"]), None))
    assert [r["id"] for r in rows] == list(range(1, 301))
    assert waits[:4] == [2.0] * 4
    assert len(waits) == 7


def test_associations_are_their_own_stream(hub: FakeHubSpot, connect) -> None:  # type: ignore[no-untyped-def]
    add_contacts(hub, 120)
    hub.associations[("contacts", "companies")] = [(3, 900, 1, ""), (3, 901, 1, ""), (110, 900, 279, "Billing")]
    source = connect(associations=["contacts.companies"])
    rows = rows_of(source.read(StreamSpec(name="contacts_to_companies"), None))
    assert sorted(rows, key=lambda r: (r["from_id"], r["to_id"])) == [
        {"from_id": 3, "to_id": 900, "association_type_id": 1, "category": "HUBSPOT_DEFINED", "label": None},
        {"from_id": 3, "to_id": 901, "association_type_id": 1, "category": "HUBSPOT_DEFINED", "label": None},
        {"from_id": 110, "to_id": 900, "association_type_id": 279, "category": "HUBSPOT_DEFINED",
         "label": "Billing"},
    ]


def test_a_wrong_token_says_to_make_a_new_one(hub: FakeHubSpot, connect) -> None:  # type: ignore[no-untyped-def]
    source = connect(access_token="pat-na1-revoked-0000")
    with pytest.raises(SourceError) as caught:
        source.check()
    assert caught.value.kind is FailureKind.CONFIG
    assert "Private Apps" in caught.value.message
    assert "update access_token" in caught.value.message
    assert "pat-na1-revoked-0000" not in caught.value.message


def test_a_missing_scope_is_named(hub: FakeHubSpot, connect) -> None:  # type: ignore[no-untyped-def]
    hub.objects["deals"] = HubSpotObject([prop("dealname", "string")])
    hub.missing_scopes = {"deals"}
    with pytest.raises(SourceError) as caught:
        connect(objects=["contacts", "deals"]).check()
    assert caught.value.kind is FailureKind.CONFIG
    assert ("the private app may not read the properties of HubSpot deals: give it the scopes "
            "crm.objects.deals.read, crm.schemas.deals.read") in caught.value.message


def test_an_unknown_object_names_it(hub: FakeHubSpot, connect) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SourceError) as caught:
        connect(objects=["contacts", "unicorns"]).check()
    assert caught.value.kind is FailureKind.CONFIG
    assert "Unable to infer object type from: unicorns" in caught.value.message


def test_an_association_must_be_from_dot_to() -> None:
    with pytest.raises(ValueError, match=r"is not `from\.to`"):
        HubSpotConfig.model_validate({"access_token": TOKEN, "associations": ["contacts-companies"]})
