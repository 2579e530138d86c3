"""The environment the Helm chart gives each container really runs Tidemark: every service migrates (the hook
Job's commands) and serves (the Deployments' commands) with exactly the rendered variables, its Secrets filled
with local PostgreSQL, the test broker and a tokens file where the chart mounts one. Only what a cluster does
is done by hand: Secret values, the mounted tokens file's path, the port, and the launcher (`local`: no
Kubernetes API here). Debian's Prometheus scrapes the six as the ServiceMonitor would (one job per Service)."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet

from tests.e2e.processes import ServiceProcess, free_port, spawn, wait_healthy
from tests.fixtures.helm import REQUIRED, SERVICES, find, fullname, one, template
from tests.fixtures.prometheus import prometheus

pytestmark = pytest.mark.e2e

TOKEN = f"helm-e2e-{uuid.uuid4().hex}"
INTERNAL = f"helm-e2e-internal-{uuid.uuid4().hex}"
PUBLIC_ROUTE = {"connector": "/v1/connections", "ingest": "/v1/workers", "orchestrator": "/v1/pipelines",
                "jobs": "/v1/runs", "schema": "/v1/drift", "impact": "/v1/alerts"}


def script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def container_env(container: dict[str, Any], secrets: dict[tuple[str, str], str],
                  overrides: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[(ref["name"], ref["key"])]
    return env | overrides


@pytest.fixture(scope="module")
def deployed(
    kafka_bootstrap: str, pg_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    values = {**REQUIRED, "kafka": {"bootstrapServers": kafka_bootstrap, "replicationFactor": 1,
                                    "partitions": 1, "topicPrefix": f"helm{uuid.uuid4().hex[:8]}"}}
    result = template(values)
    assert result.returncode == 0, result.stderr
    docs = tuple(d for d in yaml.safe_load_all(result.stdout) if d)
    home = tmp_path_factory.mktemp("helm-e2e")
    tokens = home / "tokens"
    tokens.write_text(f"# API tokens\n{TOKEN}\n")
    secrets = {("tidemark-database", f"{svc}-url"): pg_database() for svc in SERVICES}
    secrets |= {
        ("tidemark-auth", "internal-token"): INTERNAL,
        ("tidemark-connector", "secret-key"): Fernet.generate_key().decode(),
        ("tidemark-lakehouse", "catalog-uri"): pg_database().replace("postgresql+asyncpg", "postgresql+psycopg"),
    }

    def overrides(svc: str) -> dict[str, str]:
        out = {"TIDEMARK_HOME": str(home / svc), f"TIDEMARK_{svc.upper()}__AUTH__TOKENS_FILE": str(tokens),
               f"TIDEMARK_{svc.upper()}__LOG_FORMAT": "text"}
        if svc == "ingest":
            out["TIDEMARK_INGEST__LAUNCHER"] = "local"
        return out

    # The hook Job first: every service's migrations, side by side as in the Job's pod.
    (job,) = find(docs, "Job")
    migrations = [
        (c["name"], subprocess.Popen([script(c["command"][0]), *c["command"][1:]],
                                     env=container_env(c, secrets, overrides(c["name"])),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        for c in job["spec"]["template"]["spec"]["containers"]
    ]
    for name, proc in migrations:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{name} migrate failed:\n{out.decode(errors='replace')[-2000:]}"

    started: dict[str, ServiceProcess] = {}
    try:
        for svc in SERVICES:
            c = one(docs, "Deployment", fullname(svc))["spec"]["template"]["spec"]["containers"][0]
            port = free_port()
            argv = [script(c["command"][0]), *c["command"][1:]]
            argv[argv.index("--port") + 1] = str(port)
            argv[argv.index("--host") + 1] = "127.0.0.1"
            started[svc] = spawn(argv, svc, port, container_env(c, secrets, overrides(svc)), home / "logs")
        for process in started.values():
            wait_healthy(process, health_path="/readyz")  # the chart's readiness probe
        yield started
    finally:
        for process in started.values():  # all at once, then wait for each: they stop in parallel
            if process.proc.poll() is None:
                process.proc.send_signal(signal.SIGINT)
        for process in started.values():
            process.stop()


def test_every_service_is_ready_and_answers_a_token_from_the_mounted_file(
    deployed: dict[str, ServiceProcess],
) -> None:
    for svc, process in deployed.items():
        ok = httpx.get(process.url + PUBLIC_ROUTE[svc], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert ok.status_code == 200, f"{svc}: {ok.status_code} {ok.text}"
        refused = httpx.get(process.url + PUBLIC_ROUTE[svc], timeout=10)
        assert refused.status_code == 401, svc
        ready = httpx.get(process.url + "/readyz", timeout=10).json()
        assert ready["status"] == "ready", svc
        # What the ServiceMonitor scrapes: no token needed.
        metrics = httpx.get(process.url + "/metrics", timeout=10)
        assert metrics.status_code == 200, svc
        assert "tidemark_http_requests_total" in metrics.text, svc


def test_the_internal_token_from_its_secret_opens_the_internal_routes_and_the_api_token_does_not(
    deployed: dict[str, ServiceProcess],
) -> None:
    connector = deployed["connector"]
    path = f"/internal/v1/connections/{uuid.uuid4()}/config"
    inside = httpx.get(connector.url + path, headers={"Authorization": f"Bearer {INTERNAL}"}, timeout=10)
    assert inside.status_code == 404  # authenticated; the connection does not exist
    outside = httpx.get(connector.url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert outside.status_code == 401


# What each service exports (tidemark_* families), by the list: HTTP requests and latency, the outbox and
# the database everywhere; consumer lag where a service consumes; runs by status, rows and bytes written, drift
# events, alerts delivered and failed, and launcher outcomes where they happen.
EVERY_SERVICE = {"tidemark_http_requests_total", "tidemark_http_request_duration_seconds_bucket",
                 "tidemark_outbox_pending_events", "tidemark_outbox_oldest_pending_age_seconds",
                 "tidemark_db_statements_total"}
OWN_FAMILIES = {
    "connector": set(),
    "ingest": {"tidemark_consumer_lag_messages", "tidemark_worker_launches_total", "tidemark_worker_runs_total",
               "tidemark_rows_written_total", "tidemark_bytes_written_total", "tidemark_maintenance_total"},
    "orchestrator": {"tidemark_consumer_lag_messages"},
    "jobs": {"tidemark_consumer_lag_messages", "tidemark_runs", "tidemark_runs_queue_depth",
             "tidemark_runs_oldest_queued_age_seconds", "tidemark_pipelines", "tidemark_runs_rows_written_total",
             "tidemark_runs_bytes_written_total"},
    "schema": {"tidemark_consumer_lag_messages", "tidemark_schema_drift_events_total", "tidemark_schema_polls_total"},
    "impact": {"tidemark_consumer_lag_messages", "tidemark_alert_deliveries_total", "tidemark_drift_analyses_total"},
}

# Prometheus' own (__name__, job, instance) and every label docs/metrics.md lists.
BOUNDED_LABELS = {"__name__", "job", "instance", "le", "method", "route", "status", "group", "topic", "type",
                  "outcome", "outbox", "launcher", "reason", "how", "cause", "trigger", "state", "breaking", "via",
                  "connector_type", "vendor"}


def test_prometheus_scrapes_every_service_as_its_own_job(
    deployed: dict[str, ServiceProcess], tmp_path: Path,
) -> None:
    jobs = {fullname(svc): [f"127.0.0.1:{process.port}"] for svc, process in deployed.items()}
    with prometheus(jobs, tmp_path) as prom:
        prom.wait_for(f"count(up == 1) == {len(SERVICES)}")
        for svc in SERVICES:
            series = prom.query(f'{{job="{fullname(svc)}", __name__=~"tidemark_.+"}}')
            found = {s["metric"]["__name__"] for s in series}
            missing = (EVERY_SERVICE | OWN_FAMILIES[svc]) - found
            assert not missing, f"{svc}-svc does not export {sorted(missing)}"
            outboxes = {s["metric"]["outbox"] for s in series if "outbox" in s["metric"]}
            assert outboxes == {svc}, outboxes
            # Bounded labels only: a label Prometheus had to rename (exported_job, ...) or any label outside
            # the documented small sets (never an id) would show here.
            names = {label for s in series for label in s["metric"]}
            assert names <= BOUNDED_LABELS, sorted(names - BOUNDED_LABELS)
