"""Schema drift end to end on real PostgreSQL and MariaDB, for every listed kind of change: the
``schema.drift`` event arrives within one poll interval with the right kinds and classification,
impact-svc names the right pipelines, downstream pipelines and dashboards with their hops, exactly
one alert reaches a webhook receiver, and the pipeline's drift policy is carried out."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.fixtures.drift import POLL_SECONDS, DriftPlatform, Receiver, SourceDb, webhook_receiver
from tidemark.events import DestinationSpec, PipelineChanged, PipelineSpec, StreamSpec
from tidemark.lakehouse.naming import table_identifier

pytestmark = pytest.mark.integration


SETUP = [
    "CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(50), amount INT, code VARCHAR(10), note TEXT)",
    "CREATE TABLE items (id INT PRIMARY KEY, label TEXT)",
    "INSERT INTO orders VALUES (1, 'ann', 10, '7', 'first'), (2, 'bob', 20, '8', 'second')",
]
DASHBOARD_COLUMNS = ["customer", "amount", "code", "note"]


@dataclass(frozen=True)
class Case:
    name: str
    sql: dict[str, str]  # per database kind
    kind: str
    table: str
    column: str | None
    breaking: bool
    policy: dict[str, str]
    type_change: str | None = None

    @property
    def pauses(self) -> bool:
        return "pause" in self.policy.values()


def both(sql: str) -> dict[str, str]:
    return {"postgres": sql, "mariadb": sql}


CASES = [
    Case("add a column", both("ALTER TABLE orders ADD COLUMN coupon VARCHAR(20)"), "column_added", "orders",
         "coupon", False, {"column_added": "ignore"}),
    Case("drop a column", both("ALTER TABLE orders DROP COLUMN note"), "column_removed", "orders", "note", True,
         {"column_removed": "pause"}),
    Case("widen int to bigint", {"postgres": "ALTER TABLE orders ALTER COLUMN amount TYPE BIGINT",
                                 "mariadb": "ALTER TABLE orders MODIFY amount BIGINT"},
         "type_changed", "orders", "amount", False, {"type_changed": "propagate"}, "widening"),
    Case("narrow a varchar", {"postgres": "ALTER TABLE orders ALTER COLUMN customer TYPE VARCHAR(20)",
                              "mariadb": "ALTER TABLE orders MODIFY customer VARCHAR(20)"},
         "type_changed", "orders", "customer", True, {"type_changed": "fail"}, "narrowing"),
    Case("an incompatible type", {"postgres": "ALTER TABLE orders ALTER COLUMN code TYPE INT USING code::int",
                                  "mariadb": "ALTER TABLE orders MODIFY code INT"},
         "type_changed", "orders", "code", True, {"type_changed": "pause"}, "incompatible"),
    Case("rename a column", both("ALTER TABLE orders RENAME COLUMN note TO remark"), "column_renamed", "orders",
         "remark", True, {"column_removed": "pause"}),
    Case("drop a table", both("DROP TABLE items"), "stream_removed", "items", None, True,
         {"table_removed": "pause"}),
    Case("add a table", both("CREATE TABLE refunds (id INT PRIMARY KEY, order_id INT)"), "stream_added", "refunds",
         None, False, {"table_added": "add_stream"}),
    Case("add a table, new pipeline", both("CREATE TABLE refunds (id INT PRIMARY KEY)"), "stream_added", "refunds",
         None, False, {"table_added": "create_pipeline"}),
]


@dataclass
class World:
    connection_id: str
    load_id: str
    marts_id: uuid.UUID
    dashboard_id: str
    report_id: str
    receiver: Receiver


async def wait_for(check: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.2)
    pytest.fail(f"{what} did not happen within {within} s")


async def build_world(platform: DriftPlatform, db: SourceDb, case: Case, receiver: Receiver) -> World:
    """A connection (first snapshot taken), a pipeline loading both tables with the case's policy and its
    downstream pipeline, a dashboard on four columns of `orders`, a report on `items`, one alert rule."""
    api = platform.api
    for statement in SETUP:
        db.execute(statement)
    created = await api.post("/v1/connections", json={"name": f"src-{db.kind}", "type": db.connector_type,
                                                       "config": db.config})
    assert created.status_code == 201, created.text
    connection_id = created.json()["id"]

    async def first_snapshot() -> bool:
        return bool((await api.get(f"/v1/schemas/connections/{connection_id}/history")).json())

    await wait_for(first_snapshot, 15, "the first snapshot")
    [watched] = [c for c in (await api.get("/v1/schemas/connections")).json() if c["connection_id"] == connection_id]
    assert watched["poll_interval_seconds"] == POLL_SECONDS  # the service's default, in effect

    streams = [{"name": db.stream("orders"), "sync_mode": "incremental", "cursor_field": "id", "primary_key": ["id"]},
               {"name": db.stream("items")}]
    load = await api.post("/v1/pipelines", json={"name": "load", "connection_id": connection_id,
                                                  "streams": streams, "drift_policy": case.policy})
    assert load.status_code == 201, load.text
    assert load.json()["drift_policy"] == case.policy
    load_id = load.json()["id"]
    # orchestrator-svc does not emit pipeline.changed yet: the test tells impact-svc, as it will.
    selector = StreamSpec(name=db.stream("*"))
    await platform.publish(PipelineChanged(
        pipeline_id=uuid.UUID(load_id), change="created", status="active", drift_policy=case.policy,
        pipeline=PipelineSpec(pipeline_id=uuid.UUID(load_id), name="load", connection_id=uuid.UUID(connection_id),
                              streams=[*(StreamSpec.model_validate(s) for s in streams), selector],
                              destination=DestinationSpec())))
    marts_id = uuid.uuid4()
    await platform.publish(PipelineChanged(
        pipeline_id=marts_id, change="created", status="active", upstreams=[uuid.UUID(load_id)],
        pipeline=PipelineSpec(pipeline_id=marts_id, name="marts", connection_id=uuid.uuid4(),
                              streams=[StreamSpec(name="marts.revenue")], destination=DestinationSpec())))

    async def projected() -> bool:
        return len((await api.get("/v1/impact/pipelines")).json()) == 2

    await wait_for(projected, 5, "the pipelines projection")
    dashboard = await api.post("/v1/downstreams", json={
        "name": "Revenue", "kind": "dashboard", "table": table_identifier("tidemark", "", db.stream("orders")),
        "columns": DASHBOARD_COLUMNS})
    report = await api.post("/v1/downstreams", json={
        "name": "Items report", "kind": "report", "table": table_identifier("tidemark", "", db.stream("items"))})
    rule = await api.post("/v1/alert-rules", json={"name": "all drift", "connection_id": connection_id,
                                                    "min_severity": "info", "url": receiver.url})
    assert rule.status_code == 201, rule.text
    return World(connection_id, load_id, marts_id, dashboard.json()["id"], report.json()["id"], receiver)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_change_is_detected_analysed_alerted_and_answered_by_policy(
    case: Case, source_db: SourceDb, drift_platform: DriftPlatform
) -> None:
    await check_case(case, source_db, drift_platform)


async def test_on_the_real_broker_a_dropped_column_is_detected_alerted_and_pauses_the_pipeline(
    source_db: SourceDb, drift_platform_on_kafka: DriftPlatform
) -> None:
    await check_case(CASES[1], source_db, drift_platform_on_kafka)


async def check_case(case: Case, source_db: SourceDb, platform: DriftPlatform) -> None:
    api = platform.api
    with webhook_receiver() as receiver:
        world = await build_world(platform, source_db, case, receiver)
        await asyncio.sleep(0.5)
        drifts = {"breaking": str(case.breaking).lower()}
        drifts_before = REGISTRY.get_sample_value("tidemark_schema_drift_events_total", drifts) or 0.0
        source_db.execute(case.sql[source_db.kind])
        altered = time.monotonic()
        await platform.until(lambda: bool(platform.events("schema.drift")), within=POLL_SECONDS + 3)
        assert time.monotonic() - altered <= POLL_SECONDS + 2  # within a poll (and the poll's own time)

        # Detection: one event, one change, the right kind and classification.
        [event] = platform.events("schema.drift")
        data: dict[str, Any] = event.data
        [change] = data["changes"]
        assert (change["kind"], change["stream"], change["column"], change["breaking"]) == (
            case.kind, source_db.stream(case.table), case.column, case.breaking)
        assert change["type_change"] == case.type_change
        if case.kind == "column_renamed":
            assert (change["before"], change["after"], change["probable"]) == ("note", "remark", True)
        drift_id = data["drift_id"]
        assert REGISTRY.get_sample_value("tidemark_schema_drift_events_total", drifts) == drifts_before + 1

        # Alert: exactly one, at the webhook, however many polls and pipelines saw the change.
        await wait_for(lambda: _async(bool(receiver.received)), 10, "the alert delivery")
        await asyncio.sleep(POLL_SECONDS)  # a later poll sees the same change: it must not alert again
        [posted] = receiver.received
        assert posted["drift_id"] == drift_id
        assert posted["severity"] == ("critical" if case.breaking else "warning")
        [alert] = (await api.get("/v1/alerts", params={"drift_id": drift_id})).json()
        assert (alert["delivery"], alert["attempts"]) == ("sent", 1)
        acked = await api.post(f"/v1/alerts/{alert['id']}/ack", json={"by": "oncall"})
        assert acked.json()["acknowledged_by"] == "oncall"
        assert (await api.get("/v1/alerts", params={"acknowledged": "false"})).json() == []

        # Impact: the pipeline (hop 1), its table (2), the dashboard or report (3), the pipeline after it (2).
        impact = (await api.get(f"/v1/impact/{drift_id}")).json()
        assert impact["breaking"] is case.breaking
        [changed] = impact["changes"]
        hits = {p["name"]: p for p in changed["pipelines"]}
        # Impact is computed against the pipelines as they are now: with create_pipeline, the
        # pipeline the policy created (announced by orchestrator-svc's pipeline.changed) reads the new table.
        created = {"load-refunds"} if "create_pipeline" in case.policy.values() else set()
        assert set(hits) - created == {"load", "marts"}
        load, marts = hits["load"], hits["marts"]
        assert (load["hop"], load["breaking"], load["table_hop"]) == (1, case.breaking, 2)
        assert load["tables"] == [table_identifier("tidemark", "", source_db.stream(case.table))]
        assert (marts["hop"], marts["via"], marts["table_hop"]) == (2, world.load_id, 3)
        readers = {d["name"]: d for d in load["downstreams"]}
        if case.table == "orders" and case.kind != "column_added":
            assert readers["Revenue"]["hop"] == 3
            assert readers["Revenue"]["level"] == "column"
        elif case.table == "items":
            assert readers["Items report"]["hop"] == 3
            assert readers["Items report"]["possibly"] is False  # the table is gone: certainly impacted
        else:
            assert readers == {}  # a new column, or a new table: nobody reads it yet

        # Policy: carried out, and recorded with the drift.
        [action] = impact["actions"]
        assert action["pipeline_id"] == world.load_id
        assert action["action"] == next(iter(case.policy.values()))

        await check_policy(api, platform, case, world, source_db, str(event.id))

        # schema-svc's side: the drift, filters and the snapshot history.
        found = await api.get(f"/v1/drift/{drift_id}")
        assert found.json()["changes"] == data["changes"]
        [shown] = found.json()["actions"]  # the automated response, with the drift that caused it
        assert (shown["pipeline_id"], shown["action"]) == (world.load_id, action["action"])
        listed = await api.get("/v1/drift", params={"connection_id": world.connection_id, "kind": case.kind,
                                                    "breaking": str(case.breaking).lower()})
        assert [d["id"] for d in listed.json()] == [drift_id]
        assert (await api.get("/v1/drift", params={"kind": "default_changed"})).json() == []
        history = (await api.get(f"/v1/schemas/connections/{world.connection_id}/history")).json()
        assert [h["version"] for h in history] == [2, 1]
        assert history[0]["changes"] == data["changes"]


async def check_policy(api: Any, platform: DriftPlatform, case: Case, world: World, db: SourceDb,
                       drift_event_id: str) -> None:
    """The policy carried out by orchestrator-svc, as its API shows the pipeline afterwards."""
    action = next(iter(case.policy.values()))

    async def pipeline() -> dict[str, Any]:
        return dict((await api.get(f"/v1/pipelines/{world.load_id}")).json())

    async def done() -> bool:
        found = await pipeline()
        streams = {s["name"]: s for s in found["streams"]}
        names = {p["name"] for p in (await api.get("/v1/pipelines")).json()}
        return {
            "pause": found["status"] == "paused",
            "ignore": streams[db.stream("orders")]["columns"] == ["id", "customer", "amount", "code", "note"],
            "add_stream": db.stream("refunds") in streams,
            "create_pipeline": "load-refunds" in names,
            "fail": bool(platform.events("pipeline.drift_action_requested")),
            "propagate": True,
        }[action]

    await wait_for(done, 5, f"the policy {action}")
    requests = platform.events("pipeline.pause_requested") + platform.events("pipeline.drift_action_requested")
    if action == "propagate":
        assert requests == []  # the next run evolves the table: nothing to ask of the orchestrator
    else:
        [request] = requests
        assert request.data["cause_event_id"] == drift_event_id
    if action != "pause":
        assert (await pipeline())["status"] == "active"
    if action == "fail":
        await asyncio.sleep(0.5)  # the request is applied once the orchestrator has consumed it
        run = await api.post(f"/v1/pipelines/{world.load_id}/runs")
        assert run.status_code == 202, run.text
        assert (run.json()["status"], run.json()["error"]) == ("failed", f"schema drift: type_changed on "
                                                                         f"{db.stream('orders')}.customer")
        again = await api.post(f"/v1/pipelines/{world.load_id}/runs")
        assert again.json()["status"] == "queued"  # one run fails, then runs go on


async def _async(value: bool) -> bool:
    return value




async def test_a_run_starting_polls_its_source_at_once(source_db: SourceDb, drift_platform: DriftPlatform) -> None:
    """However long the connection's interval, a run about to read the source checks it first."""
    platform, api = drift_platform, drift_platform.api
    with webhook_receiver() as receiver:
        world = await build_world(platform, source_db, CASES[0], receiver)
    await api.patch(f"/v1/schemas/connections/{world.connection_id}", json={"poll_interval_seconds": 3600})
    await asyncio.sleep(1)  # the poll the new interval starts with
    source_db.execute("ALTER TABLE orders ADD COLUMN coupon VARCHAR(20)")
    run = await api.post(f"/v1/pipelines/{world.load_id}/runs")
    assert run.status_code == 202, run.text
    await platform.until(lambda: bool(platform.events("schema.drift")), within=5)
    [event] = platform.events("schema.drift")
    assert [c["column"] for c in event.data["changes"]] == ["coupon"]


async def test_refresh_polls_now_and_a_poll_without_change_stores_nothing(
    source_db: SourceDb, drift_platform: DriftPlatform
) -> None:
    platform, api = drift_platform, drift_platform.api
    with webhook_receiver() as receiver:
        world = await build_world(platform, source_db, CASES[0], receiver)
    too_often = await api.patch(f"/v1/schemas/connections/{world.connection_id}", json={"poll_interval_seconds": 1})
    assert too_often.status_code == 422
    assert [e["field"] for e in too_often.json()["errors"]] == ["poll_interval_seconds"]
    await api.patch(f"/v1/schemas/connections/{world.connection_id}", json={"poll_interval_seconds": 3600})
    await asyncio.sleep(1)

    unchanged = (await api.post(f"/v1/schemas/connections/{world.connection_id}/refresh")).json()
    assert (unchanged["outcome"], unchanged["version"], unchanged["drift"]) == ("unchanged", 1, None)
    source_db.execute("ALTER TABLE items ADD COLUMN price INT")
    changed = (await api.post(f"/v1/schemas/connections/{world.connection_id}/refresh")).json()
    assert (changed["outcome"], changed["version"]) == ("changed", 2)
    assert [(c["kind"], c["column"]) for c in changed["drift"]["changes"]] == [("column_added", "price")]
    again = (await api.post(f"/v1/schemas/connections/{world.connection_id}/refresh")).json()
    assert again["outcome"] == "unchanged"
    assert [h["version"] for h in (await api.get(f"/v1/schemas/connections/{world.connection_id}/history")).json()] \
        == [2, 1]
    missing = await api.post("/v1/schemas/connections/01a24814-05e7-763e-89fa-4512de8b4f8f/refresh")
    assert missing.status_code == 404
