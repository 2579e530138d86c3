"""Every Grafana dashboard's every panel query, run against a real Prometheus that scrapes the embedded
platform every second, returns data after a demo run, a second successful run, a maintenance run, a failed run, a schema
drift and two alert deliveries (one sent, one refused); the shipped alert rules load and evaluate."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fixtures.drift import webhook_receiver
from tests.fixtures.embedded import Embedded, embedded
from tests.fixtures.prometheus import DASHBOARDS, Prometheus, prometheus

__all__ = ["embedded"]

pytestmark = pytest.mark.e2e
JOB = "tidemark"
# Grafana's interval variables, as wide as the whole scenario (it runs within a minute or two of
# scraping every second), so rates and increases cover what the scenario did.
INTERVALS = {"__rate_interval": "3m", "__range": "10m", "__interval": "15s"}


@dataclass
class Scraped:
    prometheus: Prometheus
    variables: dict[str, str]


def wait_run(api: httpx.Client, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = api.get(f"/v1/runs/{run_id}")
        if response.status_code == 200 and response.json()["status"] in {"succeeded", "failed", "cancelled",
                                                                         "partially_succeeded"}:
            return dict(response.json())
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not end")


def until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def scenario(api: httpx.Client, home: Path) -> None:
    """What the drift and alert panels, and the rates of runs, need besides the demo run."""
    source = home / "metrics-source.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(500)])
    connection = api.post("/v1/connections", json={"name": "metrics-source", "type": "sqlite",
                                                   "config": {"path": str(source)}})
    assert connection.status_code == 201, connection.text
    connection_id = connection.json()["id"]
    checked = api.post(f"/v1/connections/{connection_id}/check")
    assert checked.status_code == 200, checked.text

    pipeline = api.post("/v1/pipelines", json={"name": "metrics-items", "connection_id": connection_id,
                                               "streams": [{"name": "main.items"}],
                                               "destination": {"kind": "iceberg", "namespace": "metrics"}})
    assert pipeline.status_code == 201, pipeline.text
    run = api.post(f"/v1/pipelines/{pipeline.json()['id']}/runs")
    assert wait_run(api, run.json()["run_id"])["status"] == "succeeded"
    # A maintenance run of the table it wrote, for the table maintenance panels.
    maintained = api.post(f"/v1/pipelines/{pipeline.json()['id']}/maintenance", json={"action": "all"})
    assert maintained.status_code == 202, maintained.text
    assert wait_run(api, maintained.json()["run_id"])["status"] == "succeeded"

    # A stream the source lacks (saved unvalidated, never retried) makes a failed run.
    broken = api.post("/v1/pipelines", params={"validate": "false"}, json={
        "name": "metrics-broken", "connection_id": connection_id, "streams": [{"name": "main.nowhere"}],
        "destination": {"kind": "iceberg", "namespace": "metrics"}, "retries": {"max_attempts": 1}})
    assert broken.status_code == 201, broken.text
    failed = api.post(f"/v1/pipelines/{broken.json()['id']}/runs")
    assert wait_run(api, failed.json()["run_id"])["status"] == "failed"

    with webhook_receiver() as hook, webhook_receiver(status=[400]) as refusing:
        for name, url in (("metrics-hook", hook.url), ("metrics-refusing", refusing.url)):
            rule = api.post("/v1/alert-rules", json={"name": name, "url": url, "min_severity": "info",
                                                     "connection_id": connection_id})
            assert rule.status_code == 201, rule.text
        until(lambda: api.get(f"/v1/schemas/connections/{connection_id}/history").json(), "the first snapshot")
        with sqlite3.connect(source) as db:
            db.execute("ALTER TABLE items ADD COLUMN price REAL")
        refreshed = api.post(f"/v1/schemas/connections/{connection_id}/refresh")
        assert refreshed.status_code == 200, refreshed.text
        until(lambda: hook.received and refusing.received, "both alert deliveries")


@pytest.fixture(scope="module")
def scraped(embedded: Embedded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    target = urlsplit(embedded.process.url).netloc
    with prometheus([target], tmp_path_factory.mktemp("prometheus"), job=JOB) as prom, \
            httpx.Client(base_url=embedded.process.url, timeout=30,
                         headers={"Authorization": f"Bearer {embedded.token}"}) as api:
        prom.wait_for(f'up{{job="{JOB}"}} == 1')
        scenario(api, embedded.home)
        # Every counter the scenario moved has been scraped since it moved.
        prom.wait_for(f'increase(tidemark_alert_deliveries_total{{job="{JOB}", outcome="failed"}}[3m]) > 0')
        prom.wait_for(f'increase(tidemark_schema_drift_events_total{{job="{JOB}"}}[3m]) > 0')
        prom.wait_for(f'increase(tidemark_maintenance_total{{job="{JOB}", via="run"}}[3m]) > 0')
        time.sleep(2)  # a couple more scrapes: the gauges settled after the last events
        outboxes = prom.api("label/outbox/values", **{"match[]": "tidemark_outbox_pending_events"})
        assert sorted(outboxes) == ["connector", "impact", "ingest", "jobs", "orchestrator", "schema"]
        yield Scraped(prom, {**INTERVALS, "job": JOB, "outbox": "ingest"})


def dashboards() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield from panel.get("panels", [])
        if panel["type"] != "row":
            yield panel


VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def substitute(expr: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"no test value for ${name} in {expr}"
        return values[name]

    return VARIABLE.sub(value, expr)


@pytest.mark.parametrize("path", dashboards(), ids=lambda p: p.stem)
def test_every_panel_query_returns_data(scraped: Scraped, path: Path) -> None:
    board = json.loads(path.read_text())
    empty = []
    for panel in panels(board):
        for target in panel["targets"]:
            expr = substitute(target["expr"], scraped.variables)
            result = scraped.prometheus.query(expr)  # asserts Prometheus accepted the query
            if not any(not math.isnan(float(sample["value"][1])) for sample in result):
                empty.append(f"{panel['title']!r}: {expr} -> {result}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


@pytest.mark.parametrize("path", dashboards(), ids=lambda p: p.stem)
def test_every_template_variable_finds_values(scraped: Scraped, path: Path) -> None:
    board = json.loads(path.read_text())
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match, variable["query"]
        selector = substitute(match.group(1), scraped.variables)
        found = scraped.prometheus.api(f"label/{match.group(2)}/values", **{"match[]": selector})
        assert scraped.variables[variable["name"]] in found, (variable["name"], found)


def test_the_shipped_alert_rules_load_and_evaluate(scraped: Scraped) -> None:
    def evaluated() -> list[dict[str, Any]]:
        groups = scraped.prometheus.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r["health"] == "ok" for r in rules) else []

    rules = until(evaluated, "every rule to evaluate", timeout=10)
    assert len(rules) == 8
    # The refused delivery fires its alert (it has no `for:`); the rest of the scenario is healthy by
    # the rules' thresholds.
    assert [r["name"] for r in rules if r["state"] == "firing"] == ["TidemarkAlertDeliveriesFailing"]


ID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)


def test_no_series_is_labelled_with_an_id_or_a_name_after_the_scenario(scraped: Scraped) -> None:
    # The scenario made connections, pipelines, runs, a drift and alerts: none of their ids or names may be a
    # label value (bounded labels), or every pipeline and run would be a series of its own.
    series = scraped.prometheus.api("series", **{"match[]": '{__name__=~"tidemark_.+"}'})
    assert len(series) > 100
    names = ("metrics-source", "metrics-items", "metrics-broken", "metrics-hook", "metrics-refusing", "items")
    unbounded = sorted({f"{key}={value}" for s in series for key, value in s.items()
                        if ID.search(value) or any(name in value for name in names)})
    assert not unbounded, unbounded
    routes = {s["route"] for s in series if "route" in s}
    assert "/v1/runs/{run_id}" in routes  # the scenario's polls are counted under the route's template
