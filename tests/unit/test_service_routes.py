"""Each service owns whole URL path prefixes, so one Ingress can route by prefix: no prefix is served by two
services, and the chart's Ingress sends every public route of every service to that service."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from tests.fixtures.helm import SERVICES, find, fullname, rendered
from tidemark_connector.app import create_app as connector_app
from tidemark_connector.settings import ConnectorSettings
from tidemark_impact.app import create_app as impact_app
from tidemark_impact.settings import ImpactSettings
from tidemark_ingest.app import create_app as ingest_app
from tidemark_ingest.settings import IngestSettings
from tidemark_jobs.app import create_app as jobs_app
from tidemark_jobs.settings import JobsSettings
from tidemark_orchestrator.app import create_app as orchestrator_app
from tidemark_orchestrator.settings import OrchestratorSettings
from tidemark_schema.app import create_app as schema_app
from tidemark_schema.settings import SchemaSettings

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def apps() -> dict[str, FastAPI]:
    # Building an app starts nothing (engines and consumers live in the lifespan).
    return {
        "connector": connector_app(ConnectorSettings()),
        "ingest": ingest_app(IngestSettings()),
        "orchestrator": orchestrator_app(OrchestratorSettings()),
        "jobs": jobs_app(JobsSettings()),
        "schema": schema_app(SchemaSettings()),
        "impact": impact_app(ImpactSettings()),
    }


def paths(app: FastAPI) -> set[str]:
    return {context.path_format for context in iter_route_contexts(app.routes)}


def public_paths(apps: dict[str, FastAPI], svc: str) -> set[str]:
    """A service's own public routes: not the platform's (health, metrics, docs: every service has them and the
    Ingress does not route them) and not /internal (service-to-service, never exposed)."""
    shared = set.intersection(*(paths(app) for app in apps.values()))
    own_health = {f"/{svc}/healthz", f"/{svc}/readyz"}
    return {p for p in paths(apps[svc]) - shared - own_health if not p.startswith("/internal/")}


def prefix_of(path: str) -> str:
    """The prefix that owns a path: ``/v1/<resource>`` for the API, the first segment otherwise (``/jobs``)."""
    parts = path.strip("/").split("/")
    return "/" + "/".join(parts[:2] if parts[0] == "v1" else parts[:1])


def covered(path: str, prefixes: list[str]) -> bool:
    # Ingress `Prefix` matching is by whole path segments.
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def test_every_service_has_public_routes_and_the_health_routes_the_probes_use(apps: dict[str, FastAPI]) -> None:
    for svc in SERVICES:
        assert public_paths(apps, svc), svc
        assert {"/healthz", "/readyz", "/metrics"} <= paths(apps[svc]), svc


def test_no_path_prefix_is_served_by_two_services(apps: dict[str, FastAPI]) -> None:
    owners: dict[str, set[str]] = defaultdict(set)
    for svc in SERVICES:
        for path in public_paths(apps, svc):
            owners[prefix_of(path)].add(svc)
    shared = {prefix: sorted(svcs) for prefix, svcs in owners.items() if len(svcs) > 1}
    assert not shared, f"prefixes served by several services: {shared}"


def ingress_prefixes() -> dict[str, list[str]]:
    _, docs = rendered("everything")
    (ingress,) = find(docs, "Ingress")
    routed: dict[str, list[str]] = defaultdict(list)
    by_service = {fullname(svc): svc for svc in SERVICES}
    for rule_path in ingress["spec"]["rules"][0]["http"]["paths"]:
        routed[by_service[rule_path["backend"]["service"]["name"]]].append(rule_path["path"])
    return routed


def test_the_ingress_routes_every_public_route_to_the_service_that_serves_it(apps: dict[str, FastAPI]) -> None:
    routed = ingress_prefixes()
    for svc in SERVICES:
        missing = sorted(p for p in public_paths(apps, svc) if not covered(p, routed[svc]))
        assert not missing, f"{svc}-svc routes the Ingress does not send to it: {missing}"
        # And no prefix of this service would catch another service's routes.
        for other in SERVICES:
            if other == svc:
                continue
            stolen = sorted(p for p in public_paths(apps, other) if covered(p, routed[svc]))
            assert not stolen, f"{svc}-svc's Ingress prefixes catch {other}-svc routes: {stolen}"


def test_the_ingress_exposes_no_internal_or_platform_route(apps: dict[str, FastAPI]) -> None:
    routed: dict[str, Any] = ingress_prefixes()
    every_prefix = [p for prefixes in routed.values() for p in prefixes]
    for svc in SERVICES:
        hidden = [p for p in paths(apps[svc]) if p.startswith("/internal/") or p in ("/metrics", "/healthz")]
        assert hidden, svc
        assert not [p for p in hidden if covered(p, every_prefix)]
