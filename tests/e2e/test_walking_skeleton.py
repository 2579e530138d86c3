"""The walking skeleton, end to end: six service processes, real PostgreSQL, the real broker.

connection → pipeline → trigger → run.requested → worker → Iceberg → run.finished → jobs view.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.e2e.processes import ServiceProcess, free_port, service_argv, spawn, wait_healthy
from tests.fixtures.slow_source import add_rows, slow_items
from tidemark.lakehouse.catalog import open_catalog
from tidemark.lakehouse.settings import LakehouseSettings

pytestmark = pytest.mark.e2e
SERVICES = ["connector", "orchestrator", "ingest", "jobs", "schema", "impact"]
API_TOKEN = "e2e-api-token"


@dataclass
class Platform:
    services: dict[str, ServiceProcess]
    catalog_uri: str
    warehouse: str

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]


@pytest.fixture(scope="module")
def platform(
    kafka_bootstrap: str, pg_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("e2e-home")
    ports = {s: free_port() for s in SERVICES}
    catalog_db = pg_database().replace("postgresql+asyncpg", "postgresql+psycopg")
    common = {
        "TIDEMARK_HOME": str(home),
        "TIDEMARK_API_TOKEN": API_TOKEN,
        "TIDEMARK_INTERNAL_TOKEN": "e2e-internal-token",
    }
    prefix = f"e2e{uuid.uuid4().hex[:8]}"
    started: dict[str, ServiceProcess] = {}
    try:
        for service in SERVICES:
            upper = service.upper()
            env = {
                **common,
                f"TIDEMARK_{upper}__DATABASE__URL": pg_database(),
                f"TIDEMARK_{upper}__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
                f"TIDEMARK_{upper}__KAFKA__TOPIC_PREFIX": prefix,
                f"TIDEMARK_{upper}__KAFKA__SESSION_TIMEOUT_MS": "6000",
                f"TIDEMARK_{upper}__KAFKA__HEARTBEAT_INTERVAL_MS": "1000",
                f"TIDEMARK_{upper}__OUTBOX_POLL_SECONDS": "0.3",
                f"TIDEMARK_{upper}__LOG_FORMAT": "text",
            }
            if service == "connector":
                env["TIDEMARK_CONNECTOR__SECRET_KEY"] = Fernet.generate_key().decode()
            if service in ("ingest", "orchestrator"):
                env[f"TIDEMARK_{upper}__CONNECTOR_URL"] = f"http://127.0.0.1:{ports['connector']}"
            if service == "ingest":
                # Progress (and run timeouts) are checked every heartbeat: often, so tests wait little.
                env["TIDEMARK_INGEST__HEARTBEAT_SECONDS"] = "1"
                env["TIDEMARK_INGEST__LAKEHOUSE__CATALOG_URI"] = catalog_db
                env["TIDEMARK_INGEST__LAKEHOUSE__WAREHOUSE"] = f"file://{home / 'warehouse'}"
            started[service] = spawn(service_argv(service, ports[service]), service, ports[service], env,
                                     home / "logs")
        for process in started.values():
            wait_healthy(process)
        yield Platform(started, catalog_db, f"file://{home / 'warehouse'}")
    finally:
        for proc in started.values():
            proc.stop()


def api(service: ServiceProcess) -> httpx.Client:
    return httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30)


def wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fetch()
        if done(last):
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last}")


def test_every_service_is_ready(platform: Platform) -> None:
    for name, service in platform.services.items():
        response = wait_for(lambda s=service: httpx.get(s.url + "/readyz", timeout=10),
                            lambda r: r.status_code == 200, 30, f"{name} ready")
        assert response.json()["checks"][name] == {"database": True, "broker": True}


def test_skeleton_run_lands_in_iceberg_and_jobs(platform: Platform) -> None:
    with api(platform["connector"]) as connector, api(platform["orchestrator"]) as orchestrator, \
            api(platform["jobs"]) as jobs:
        created = connector.post("/v1/connections", json={
            "name": "shop", "type": "sqlite", "config": {"path": "sample:shop"}})
        assert created.status_code == 201, created.text
        connection_id = created.json()["id"]
        assert connector.post(f"/v1/connections/{connection_id}/check").json()["status"] == "succeeded"

        pipeline = orchestrator.post("/v1/pipelines", json={
            "name": "shop-full",
            "connection_id": connection_id,
            "streams": [{"name": "main.orders"}, {"name": "main.customers"}],
            "destination": {"kind": "iceberg", "namespace": "e2e"},
        })
        assert pipeline.status_code == 201, pipeline.text
        run = orchestrator.post(f"/v1/pipelines/{pipeline.json()['id']}/runs")
        assert run.status_code == 202, run.text
        run_id = run.json()["run_id"]

        view = wait_for(lambda: jobs.get(f"/v1/runs/{run_id}"),
                        lambda r: r.status_code == 200 and r.json()["status"] in {"succeeded", "failed"},
                        120, "the run to finish in jobs-svc")
        body = view.json()
        assert body["status"] == "succeeded", (body, platform["ingest"].log_tail())
        assert body["rows_written"] == 1200
        assert {s["stream"]: s["rows_written"] for s in body["streams"]} == {
            "main.orders": 1000, "main.customers": 200}

        # The orchestrator learned the outcome from run.finished too.
        runs = wait_for(lambda: orchestrator.get(f"/v1/pipelines/{pipeline.json()['id']}/runs").json(),
                        lambda rs: rs[0]["status"] == "succeeded", 30, "orchestrator run state")
        assert runs[0]["run_id"] == run_id

        failed = jobs.get("/v1/runs", params={"status": "failed"}).json()["items"]
        assert run_id not in [r["run_id"] for r in failed]

    catalog = open_catalog(LakehouseSettings(catalog_uri=platform.catalog_uri, warehouse=platform.warehouse))
    try:
        table = catalog.load_table("e2e.orders")
        orders = table.scan().to_arrow()
        snapshot = table.current_snapshot()
    finally:
        catalog.engine.dispose()
    assert orders.num_rows == 1000
    assert sorted(orders.column("id").to_pylist()) == list(range(1, 1001))
    assert snapshot is not None
    assert snapshot.summary is not None
    assert snapshot.summary.additional_properties.get("tidemark.run-id") == run_id


def test_pipelines_are_checked_against_the_source_over_http(platform: Platform) -> None:
    """orchestrator-svc asks connector-svc (its own process) for the catalog with the internal token."""
    with api(platform["connector"]) as connector, api(platform["orchestrator"]) as orchestrator:
        created = connector.post("/v1/connections", json={
            "name": "shop-checked", "type": "sqlite", "config": {"path": "sample:shop"}})
        assert created.status_code == 201, created.text
        body = {"name": "checked", "connection_id": created.json()["id"],
                "streams": [{"name": "main.orders", "columns": ["id", "colour"]}],
                "destination": {"namespace": "e2e_checked"}}
        refused = orchestrator.post("/v1/pipelines", json=body)
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["streams.0.columns.1"]

        body["streams"] = [{"name": "main.orders"}]
        assert orchestrator.post("/v1/pipelines", json=body).status_code == 201
        twin = orchestrator.post("/v1/pipelines", json={**body, "name": "checked-twin"})
        assert twin.status_code == 409, twin.text
        assert "pipeline 'checked'" in twin.json()["detail"]


def test_cancel_and_timeout_stop_a_running_load_and_leave_the_table_as_it_was(
    platform: Platform, pg_database: Callable[[], str]
) -> None:
    """Over Kafka, with the services' databases on PostgreSQL: a cancel and a pipeline's timeout each
    stop a worker in the middle of a full refresh; neither commits."""
    source = slow_items(pg_database())
    add_rows(source["conninfo"], 1, 500, delay=0)
    with api(platform["connector"]) as connector, api(platform["orchestrator"]) as orchestrator, \
            api(platform["jobs"]) as jobs:
        created = connector.post("/v1/connections", json={"name": "slow-pg", "type": "postgres",
                                                          "config": source["config"]})
        assert created.status_code == 201, created.text
        pipeline = orchestrator.post("/v1/pipelines", json={
            "name": "slow-pg", "connection_id": created.json()["id"],
            "streams": [{"name": "public.slow_items"}], "destination": {"namespace": "e2e_slow"}})
        assert pipeline.status_code == 201, pipeline.text
        pid = pipeline.json()["id"]

        def run_now() -> str:
            run = orchestrator.post(f"/v1/pipelines/{pid}/runs")
            assert run.status_code == 202, run.text
            return str(run.json()["run_id"])

        def ended(run_id: str) -> dict[str, Any]:
            view = wait_for(lambda: jobs.get(f"/v1/runs/{run_id}"),
                            lambda r: r.status_code == 200 and r.json()["status"] not in ("queued", "running"),
                            90, f"run {run_id} to end")
            return dict(view.json())

        loaded = ended(run_now())
        assert loaded["status"] == "succeeded", loaded
        catalog = open_catalog(LakehouseSettings(catalog_uri=platform.catalog_uri, warehouse=platform.warehouse))

        def table_now() -> tuple[int | None, list[int]]:
            table = catalog.load_table("e2e_slow.slow_items")
            snapshot = table.current_snapshot()
            ids = table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist()
            return (snapshot.snapshot_id if snapshot else None), sorted(ids)

        try:
            before = table_now()
            assert before[1] == list(range(1, 501))
            # 20,000 more rows at 2 ms each: a full refresh now takes 40 s.
            add_rows(source["conninfo"], 501, 20_500, delay=0.002)

            cancelled = run_now()
            wait_for(lambda: jobs.get(f"/v1/runs/{cancelled}"),
                     lambda r: r.status_code == 200 and r.json()["rows_read"] > 0, 60, "the worker to read rows")
            answer = orchestrator.post(f"/v1/pipelines/{pid}/runs/{cancelled}/cancel")
            assert answer.status_code == 202, answer.text
            assert answer.json()["outcome"] == "cancel_requested"
            view = ended(cancelled)
            assert (view["status"], view["error"]) == ("cancelled", "cancelled by user")
            assert table_now() == before

            # One attempt: a timeout counts as a failure, and this test wants the failure, not its retry.
            limited = orchestrator.patch(f"/v1/pipelines/{pid}",
                                         json={"timeout_seconds": 2, "retries": {"max_attempts": 1}})
            assert limited.status_code == 200, limited.text
            timed_out = run_now()
            view = ended(timed_out)
            assert view["status"] == "failed", view
            assert view["error"] == "timeout: still running after the pipeline's timeout_seconds (2s)"
            assert table_now() == before
            # The orchestrator learned both endings, so the pipeline takes new runs.
            runs = wait_for(lambda: orchestrator.get(f"/v1/pipelines/{pid}/runs").json(),
                            lambda rs: rs[0]["status"] == "failed", 30, "orchestrator run state")
            assert [r["status"] for r in runs[:2]] == ["failed", "cancelled"]
        finally:
            catalog.engine.dispose()  # type: ignore[attr-defined]


def test_schema_svc_watches_the_new_connection(platform: Platform) -> None:
    with api(platform["schema"]) as schema:
        watched = wait_for(lambda: schema.get("/v1/schemas/connections").json(),
                           lambda rows: any(r["name"] == "shop" for r in rows), 30, "connection.changed")
    assert [r["connector_type"] for r in watched if r["name"] == "shop"] == ["sqlite"]


@pytest.mark.parametrize("service", SERVICES)
def test_bad_requests_are_4xx_problems(platform: Platform, service: str) -> None:
    url = platform[service].url
    anonymous = httpx.get(url + "/v1/" + {"connector": "connections", "orchestrator": "pipelines",
                                          "ingest": "workers", "jobs": "runs", "schema": "schemas/connections",
                                          "impact": "alerts"}[service])
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
