"""The shipped Grafana dashboards are importable dashboards built on documented metrics, with queries
that use rate() and histogram_quantile() the way Prometheus means them; every metric the services
declare is documented; the shipped alert rules pass promtool's check and its unit tests.
(tests/e2e/test_dashboards.py runs every query against a real Prometheus.)"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.fixtures.prometheus import DASHBOARDS, ROOT, RULES, binary

pytestmark = pytest.mark.unit
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
METRIC_MODULES = ["tidemark.api.metrics", "tidemark.bus.metrics", "tidemark.db.engine",
                  "tidemark.connectors.rest.metrics", "tidemark_connector.metrics", "tidemark_ingest.metrics",
                  "tidemark_jobs.metrics", "tidemark_schema.metrics", "tidemark_impact.metrics"]
METRIC = re.compile(r"\b((?:tidemark|process)_[a-z_]+)\b")
SERIES_SUFFIXES = ("_bucket", "_count", "_sum")


def boards() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, json.loads(path.read_text())) for path in sorted(DASHBOARDS.glob("*.json"))]


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found.extend(panel.get("panels", []))
        if panel["type"] != "row":
            found.append(panel)
    return found


def documented() -> str:
    return (ROOT / "docs" / "metrics.md").read_text()


def family(series: str) -> str:
    for suffix in SERIES_SUFFIXES:
        if series.endswith(suffix) and not series.endswith("_total"):
            return series.removesuffix(suffix)
    return series


def test_the_four_dashboards_are_there_with_distinct_uids_and_titles() -> None:
    found = boards()
    assert {p.name for p, _ in found} == {"overview.json", "runs.json", "ingestion.json", "drift-alerts.json"}
    assert len({b["uid"] for _, b in found}) == len({b["title"] for _, b in found}) == 4


@pytest.mark.parametrize(("path", "board"), boards(), ids=lambda v: v.stem if isinstance(v, Path) else "")
def test_a_dashboard_is_importable_and_every_panel_reads_the_chosen_prometheus(
    path: Path, board: dict[str, Any]
) -> None:
    assert board["schemaVersion"] >= 38
    assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"]), board["uid"]
    assert board["title"].startswith("Tidemark / ")
    assert "id" not in board or board["id"] is None  # an id would clash with the importing Grafana's own
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["datasource"] == DATASOURCE
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["description"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            expr = target["expr"]
            assert "datasource" not in expr
            assert 'job=~"$job"' in expr, (panel["title"], expr)  # every query follows the job picker


@pytest.mark.parametrize(("path", "board"), boards(), ids=lambda v: v.stem if isinstance(v, Path) else "")
def test_queries_rate_only_counters_and_take_quantiles_of_bucket_rates_by_le(path: Path, board: dict[str, Any]) -> None:
    for panel in panels(board):
        for target in panel["targets"]:
            expr = target["expr"]
            for fn, series in re.findall(r"\b(rate|increase|irate)\((\w+)", expr):
                assert series.endswith(("_total", "_bucket", "_count", "_sum")), (fn, series, expr)
            for quantile in re.findall(r"histogram_quantile\(([^,]+), (.*)", expr):
                assert re.match(r"0?\.\d+$|1$", quantile[0]), expr
                assert re.match(r"sum by \(le\b", quantile[1]), expr
                assert re.search(r"rate\(\w+_bucket\{", quantile[1]), expr
            for series in METRIC.findall(expr):
                if series.startswith("tidemark_"):
                    assert f"`{family(series)}`" in documented(), f"{series} ({panel['title']!r}) is undocumented"


def test_every_declared_metric_is_documented_and_every_documented_one_declared() -> None:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    declared = set()
    for metric in REGISTRY.collect():
        if metric.name.startswith("tidemark_"):
            declared.add(metric.name + "_total" if metric.type == "counter" else metric.name)
    listed = set(re.findall(r"^\| `(tidemark_\w+)` \|", documented(), re.M))
    assert declared - listed == set(), "declared but not in docs/metrics.md"
    assert listed - declared == set(), "in docs/metrics.md but declared nowhere"


def test_every_declared_time_is_in_seconds() -> None:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    for metric in REGISTRY.collect():
        if not metric.name.startswith("tidemark_"):
            continue
        if re.search(r"_(duration|age|since|wait)(_|$)", metric.name):
            assert metric.name.endswith("_seconds"), metric.name
        if metric.type == "histogram":  # a distribution ends in its unit: a time, a size, or what it counts
            assert metric.name.endswith(("_seconds", "_bytes", "_files")), metric.name


def test_no_metric_label_is_one_prometheus_gives_every_target() -> None:
    """Prometheus (and its Operator's ServiceMonitor) attach these to every scraped series; a metric's
    own label of the same name would be renamed `exported_<name>` and every query on it would miss."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    target_labels = {"job", "instance", "service", "namespace", "pod", "container", "endpoint"}
    collectors = {c for name, c in REGISTRY._names_to_collectors.items() if name.startswith("tidemark_")}
    assert collectors
    for collector in collectors:
        labels = set(getattr(collector, "_labelnames", ()))  # prometheus-client's declared label names
        assert not labels & target_labels, (collector, labels)


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    promtool = binary("promtool")
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    tested = subprocess.run([promtool, "test", "rules", str(Path(__file__).parent / "prometheus" / "rules_test.yaml")],
                            capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
