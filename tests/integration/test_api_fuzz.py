"""Fuzz every service's OpenAPI with schemathesis: no request, however odd, may answer 5xx.

Each service runs in-process, its lifespan included, on a fresh database of its own; so does
the embedded platform, the one app that mounts all six services behind a single OpenAPI.

``test_every_response_is_documented_and_no_server_error`` lets schemathesis generate valid
and invalid requests and holds every answer to the documented status codes, content types
and schemas. Answers do not depend on the database, so it runs on SQLite.

``test_the_embedded_platform_answers_every_request_as_documented`` holds the single OpenAPI of
``tidemark up`` to the same checks, with fewer examples per operation, and with path ids drawn
half the time from a connection and a pipeline that exist.

Every answer of every test must also be a problem+json body when it is an error (``problem_json``)
and come within ``SLOW_ANSWER`` seconds (``no_hang``). The budget is small for ``make test``;
``make fuzz`` multiplies every example count by ``FUZZ_SCALE`` (``TIDEMARK_TEST_FUZZ_SCALE``).

``test_edge_values_never_cause_a_server_error`` takes generated valid requests and swaps
one value, or every value at once, for an edge case the field's schema allows but random
generation rarely reaches (``EDGE_*``): text longer than a column, NUL, integers past 64
bits; the request stays schema-valid, so it gets past validation to the database. That is where
databases break, and PostgreSQL refuses more than SQLite (a too-long ``VARCHAR``, NUL in
``text`` and ``jsonb``), so it runs on PostgreSQL.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from cryptography.fernet import Fernet
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import Case, CheckContext, HookContext
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.transport import Response
from schemathesis.python import asgi
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.settings import AuthSettings, DatabaseSettings, KafkaSettings, PlatformSettings
from tidemark_cli.embedded import Embedded, create_embedded_app
from tidemark_testing.nested import mappings

pytestmark = pytest.mark.integration

TOKEN = "fuzz-token"
INTERNAL_TOKEN = "fuzz-internal-token"
SEED = 20261101

# Strings longer than a VARCHAR (one shaped like `namespace.table`, to get past such patterns),
# NUL (PostgreSQL's text and jsonb refuse it), astral and bidi characters, injection-shaped text;
# integers past 32 and 64 bits (INTEGER, BIGINT and SQLite overflow); extreme floats.
EDGE_STRINGS = [
    "x" * 129,
    "y" * 256,
    "é" * 2049,
    "nul\x00inside",
    "\U0001f4a5" * 70,
    "\u202etxt.exe",
    "' OR 1=1 --",
    "%s%s%n",
    "NaN",
    "9" * 40,
    "a" * 150 + "." + "b" * 150,
]
EDGE_INTEGERS = [2**31, 2**63, -(2**63) - 1, 2**64, 10**30, -1, 0]
EDGE_NUMBERS = [1e308, -1e308, 5e-324, -0.0]
ALL_EDGES: list[Any] = [*EDGE_STRINGS, *EDGE_INTEGERS, *EDGE_NUMBERS]


def _no_extras() -> dict[str, Any]:
    return {}


def _connector_extras() -> dict[str, Any]:
    return {"secret_key": SecretStr(Fernet.generate_key().decode())}


@dataclass(frozen=True)
class Service:
    package: str
    settings_class: str
    extras: Callable[[], dict[str, Any]] = field(default=_no_extras)

    def present(self) -> bool:
        # ingest-svc grew its API after the others; it is fuzzed as soon as it has one.
        return importlib.util.find_spec(f"{self.package}.app") is not None


SERVICES = [
    Service("tidemark_connector", "ConnectorSettings", _connector_extras),
    Service("tidemark_orchestrator", "OrchestratorSettings"),
    Service("tidemark_jobs", "JobsSettings"),
    Service("tidemark_schema", "SchemaSettings"),
    Service("tidemark_impact", "ImpactSettings"),
    Service("tidemark_ingest", "IngestSettings"),
]


def _targets(engine: str) -> list[Any]:
    return [
        pytest.param((service, engine), id=f"{service.package.removeprefix('tidemark_')}-{engine}")
        for service in SERVICES
        if service.present()
    ]


def _database_url(request: pytest.FixtureRequest, tmp_path: Path, engine: str) -> str:
    if engine == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/fuzz.db"
    make: Callable[[], str] = request.getfixturevalue("pg_database")
    return make()


def _service_app(request: pytest.FixtureRequest, tmp_path: Path) -> FastAPI:
    service, engine = request.param
    definition = importlib.import_module(f"{service.package}.app").DEFINITION
    settings_class = getattr(importlib.import_module(f"{service.package}.settings"), service.settings_class)
    service_settings = settings_class(
        database=DatabaseSettings(url=_database_url(request, tmp_path, engine)),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        platform=PlatformSettings(home=tmp_path, internal_token=SecretStr(INTERNAL_TOKEN)),
        bus="memory",
        **service.extras(),
    )
    services: list[tuple[Any, Any]] = [(definition, service_settings)]
    if service.package == "tidemark_orchestrator":
        services = _orchestrator_with_connector(service_settings, _database_url(request, tmp_path / "c", engine))
    app = build_app(services, title=definition.title, bus=MemoryBus(), migrate=True)
    if len(services) > 1:
        _call_self.append(app)
    return app


def _schema(request: pytest.FixtureRequest, app: FastAPI, *, edges: bool = False) -> Iterator[BaseSchema]:
    """The app's schema, loaded from the running app; the app stops afterwards."""
    # schemathesis 4.32 renames the running test through `Function._nodeid`, which pytest 9.2
    # no longer has; giving it one back keeps its per-operation reporting working.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    generation: dict[str, Any] = {
        "deterministic": True,
        # Unknown query parameters are ignored, as HTTP APIs do; they are not invalid input.
        "allow-extra-parameters": False,
        # The tests send the real token; a generated one would only ever get a 401.
        "with-security-parameters": False,
    }
    phases: dict[str, Any] = {}
    if edges:
        # An edge value is worth most inside an otherwise valid request, which reaches the database.
        generation["mode"] = "positive"
        phases = {"coverage": {"enabled": False}, "examples": {"enabled": False}}
    config = SchemathesisConfig.from_dict({"seed": SEED, "generation": generation, "phases": phases})
    # Loading the schema through the app starts its lifespan, which runs until shutdown_lifespans.
    try:
        schema: BaseSchema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
        if _call_self and app is _call_self[-1]:
            # orchestrator-svc with its connector-svc: only the orchestrator's routes are its to fuzz.
            schema = schema.include(path_regex=f"^{PIPELINES}")
        yield schema
    finally:
        asgi.shutdown_lifespans()
        _call_self.clear()


PIPELINES = "/v1/pipelines"
_call_self: list[Any] = []


async def _the_app(scope: Any, receive: Any, send: Any) -> None:
    await _call_self[-1](scope, receive, send)


def _orchestrator_with_connector(settings: Any, connector_database: str) -> list[tuple[Any, Any]]:
    """orchestrator-svc checks pipelines against connector-svc's catalogs: it gets a real one in the
    same app, reached in-process (with no connections, so a checked pipeline names an unknown one;
    `validate=false` ones reach the database). Only the orchestrator's routes are fuzzed here."""
    from tidemark_connector.app import DEFINITION as CONNECTOR
    from tidemark_connector.settings import ConnectorSettings
    from tidemark_orchestrator.app import definition

    connector = ConnectorSettings(database=DatabaseSettings(url=connector_database), auth=settings.auth,
                                  platform=settings.platform, bus="memory", **_connector_extras())
    # No sockets behind an ASGI transport: nothing to close when the test ends.
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=_the_app), base_url="http://connector")
    return [(CONNECTOR, connector), (definition(http), settings.model_copy(update={"connector_url": "http://connector"}))]


@pytest.fixture(params=_targets("sqlite"))
def api_schema(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseSchema]:
    yield from _schema(request, _service_app(request, tmp_path))


def _create(schema: BaseSchema, path: str, body: dict[str, Any]) -> str:
    response = schema[path]["POST"].Case(body=body, media_type="application/json").call(
        headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 201, response.text
    created: str = response.json()["id"]
    return created


def _existing_ids(schema: BaseSchema) -> dict[str, str]:
    """A connection and a pipeline that exist, for path parameters to name: most code behind
    a path id only runs when the id is found (`PATCH` with `"destination": null` was a 500 only
    for a pipeline that exists)."""
    connection = _create(
        schema, "/v1/connections", {"name": "fuzz-shop", "type": "sqlite", "config": {"path": "sample:shop"}}
    )
    pipeline = _create(
        schema,
        "/v1/pipelines",
        {"name": "fuzz-orders", "connection_id": connection, "streams": [{"name": "main.orders"}]},
    )
    return {"connection_id": connection, "pipeline_id": pipeline}


# Not with an id that exists: a run would start a worker process, which is the e2e tests' business.
STARTS_A_RUN = ("POST", "/v1/pipelines/{pipeline_id}/runs")


@pytest.fixture
def embedded_schema(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseSchema]:
    """``tidemark up``'s app as it is built (SQLite databases under one home), on a memory bus,
    with path ids drawn half the time from resources that exist."""
    env = Embedded(
        home=tmp_path, url="http://127.0.0.1:1", api_token=TOKEN, internal_token=INTERNAL_TOKEN,
        kafka=KafkaSettings(),
    )
    for schema in _schema(request, create_embedded_app(env, bus=MemoryBus())):
        schema.hook(_sometimes_existing(_existing_ids(schema)))
        yield schema


def _sometimes_existing(existing: dict[str, str]) -> Callable[[HookContext, Any], st.SearchStrategy[Any]]:
    def flatmap_path_parameters(context: HookContext, parameters: Any) -> st.SearchStrategy[Any]:
        operation = context.operation
        assert operation is not None
        if not isinstance(parameters, dict) or (operation.method.upper(), operation.path) == STARTS_A_RUN:
            return st.just(parameters)
        known = {k: existing[k] for k in parameters if k in existing}
        return st.sampled_from([parameters, {**parameters, **known}]) if known else st.just(parameters)

    return flatmap_path_parameters


JsonSchema = dict[str, Any]
# What a union resolves to when none of its branches takes the value.
NOTHING: JsonSchema = {"type": []}


def _resolve(schema: JsonSchema, value: Any, root: JsonSchema) -> JsonSchema:
    """The part of ``schema`` that describes ``value``: refs followed, the matching union branch."""
    while "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    for union in ("anyOf", "oneOf"):
        if union in schema:
            for branch in schema[union]:
                resolved = _resolve(branch, value, root)
                if _type_matches(resolved, value):
                    return resolved
            return NOTHING
    return schema


def _type_matches(schema: JsonSchema, value: Any) -> bool:
    expected = schema.get("type")
    if expected is None:
        return True
    types = expected if isinstance(expected, list) else [expected]
    actual = {
        str: "string", bool: "boolean", int: "integer", float: "number", list: "array", dict: "object",
        type(None): "null",
    }.get(type(value))
    return actual in types or (actual == "integer" and "number" in types)


def _admits(schema: JsonSchema, value: Any) -> bool:
    """Whether the field's own schema allows ``value``, so the request stays schema-valid."""
    if not _type_matches(schema, value):
        return False
    if "enum" in schema or "const" in schema or "format" in schema:
        # Ids, timestamps and fixed choices are checked exactly; edge values only get a 422 there.
        return False
    if isinstance(value, str):
        pattern = schema.get("pattern")
        return (
            schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value))
            and (pattern is None or re.search(pattern, value) is not None)
        )
    low, high = schema.get("minimum"), schema.get("maximum")
    low_open, high_open = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    return not (
        (low is not None and value < low)
        or (high is not None and value > high)
        or (low_open is not None and value <= low_open)
        or (high_open is not None and value >= high_open)
    )


def _edge_slots(value: Any, schema: JsonSchema, root: JsonSchema) -> list[tuple[tuple[Any, ...], list[Any]]]:
    """Every scalar in ``value``, and every optional scalar it leaves out, with the edge values
    its field's schema allows."""
    slots: list[tuple[tuple[Any, ...], list[Any]]] = []

    def scalar(field_schema: JsonSchema, path: tuple[Any, ...]) -> None:
        allowed = [edge for edge in ALL_EDGES if _admits(_resolve(field_schema, edge, root), edge)]
        if allowed:
            slots.append((path, allowed))

    def walk(node: Any, node_schema: JsonSchema, path: tuple[Any, ...]) -> None:
        resolved = _resolve(node_schema, node, root)
        if isinstance(node, dict):
            properties = resolved.get("properties", {})
            extra = resolved.get("additionalProperties", {})
            for key, child in node.items():
                walk(child, properties.get(key, extra if isinstance(extra, dict) else {}), (*path, key))
            for key in [k for k in properties if k not in node]:
                scalar(properties[key], (*path, key))
        elif isinstance(node, list):
            items = resolved.get("items", {})
            for index, child in enumerate(node):
                walk(child, items if isinstance(items, dict) else {}, (*path, index))
        elif not isinstance(node, bool):
            scalar(node_schema, path)

    walk(value, schema, ())
    return slots


def _with_edges(value: Any, schema: JsonSchema, root: JsonSchema) -> st.SearchStrategy[Any]:
    """``value`` with one scalar swapped for an edge value its field's schema allows, or with
    every scalar that allows it swapped for the same edge value (which finds a field that
    breaks in far fewer tries)."""
    slots = _edge_slots(value, schema, root)
    if not slots:
        return st.just(value)
    one = st.sampled_from(slots).flatmap(
        lambda slot: st.sampled_from(slot[1]).map(lambda edge: _replace(value, slot[0], edge))
    )

    def everywhere(edge: Any) -> Any:
        result = value
        for path, allowed in slots:
            # Only the first item of a list: equal items would break uniqueness rules instead.
            first_items = all(step == 0 for step in path if isinstance(step, int))
            if first_items and any(edge is a for a in allowed):
                result = _replace(result, path, edge)
        return result

    edges = [edge for edge in ALL_EDGES if any(edge is a for _, allowed in slots for a in allowed)]
    everywhere_strategy = st.sampled_from(edges).map(everywhere)
    return st.one_of(everywhere_strategy, everywhere_strategy, one)


def _replace(node: Any, path: tuple[Any, ...], edge: Any) -> Any:
    if not path:
        return edge
    head, *rest = path
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[head] = _replace(copy[head] if rest else None, tuple(rest), edge)
    return copy


def _root(operation: Any, schema: JsonSchema) -> JsonSchema:
    # schemathesis inlines a definition's references under `x-bundled`; others point at the document.
    bundled: JsonSchema = {}
    for node in mappings(schema):
        bundled.update(node.get("x-bundled", {}))
    return {**operation.schema.raw_schema, "x-bundled": bundled}


def _parameters_schema(parameters: Any) -> JsonSchema:
    return {"type": "object", "properties": {p.name: p.definition.get("schema", {}) for p in parameters}}


def flatmap_body(context: HookContext, body: Any) -> st.SearchStrategy[Any]:
    operation = context.operation
    assert operation is not None
    schema: JsonSchema = next((b.definition.get("schema", {}) for b in operation.body), {})
    return _with_edges(body, schema, _root(operation, schema))


def flatmap_query(context: HookContext, query: dict[str, Any]) -> st.SearchStrategy[Any]:
    operation = context.operation
    assert operation is not None
    schema = _parameters_schema(operation.query)
    return _with_edges(query, schema, _root(operation, schema))


def flatmap_path_parameters(context: HookContext, path_parameters: dict[str, Any]) -> st.SearchStrategy[Any]:
    operation = context.operation
    assert operation is not None
    schema = _parameters_schema(operation.path_parameters)
    return _with_edges(path_parameters, schema, _root(operation, schema))


@pytest.fixture(params=_targets("postgresql"))
def edge_schema(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseSchema]:
    for schema in _schema(request, _service_app(request, tmp_path), edges=True):
        for hook in (flatmap_body, flatmap_query, flatmap_path_parameters):
            schema.hook(hook)
        yield schema


api = schemathesis.pytest.from_fixture("api_schema")
edges = schemathesis.pytest.from_fixture("edge_schema")
embedded = schemathesis.pytest.from_fixture("embedded_schema")

# Bounded for a 2-core CI machine; derandomized so a failure reproduces run after run.
# `make fuzz` raises the budget: every example count times TIDEMARK_TEST_FUZZ_SCALE.
SCALE = max(1.0, float(os.environ.get("TIDEMARK_TEST_FUZZ_SCALE", "1")))


def examples(count: int) -> int:
    return int(count * SCALE)


QUICK = settings(
    max_examples=examples(25),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
# Most generated bodies break a rule the schema cannot state (incremental streams need keys),
# so finding the one edge value in an otherwise valid body takes more tries.
THOROUGH = settings(QUICK, max_examples=examples(60))
# The embedded app serves the same operations the per-service runs fuzz in depth; here each gets
# fewer examples, enough to catch what only the combined app can get wrong (one document for six
# services, shared middleware, dependencies and bus).
COMBINED = settings(QUICK, max_examples=examples(12))
# An answer slower than this is a hang (a loaded 2-core machine answers the slowest route in well under it).
SLOW_ANSWER = 20.0
PROBLEM = "application/problem+json"


@schemathesis.check
def problem_json(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Every 4xx and 5xx answer is an RFC 9457 problem body: type, title and its own status."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith(PROBLEM), f"error {response.status_code} answered as {content_type!r}"
    body = json.loads(response.content)
    assert isinstance(body, dict), body
    assert {"type", "title", "status"} <= body.keys(), body
    assert body["status"] == response.status_code, body
    return True


@schemathesis.check
def no_hang(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    assert response.elapsed < SLOW_ANSWER, f"answered after {response.elapsed:.1f} s"
    return True


OURS = [problem_json, no_hang]


def _headers(case: Case[Any]) -> dict[str, str]:
    token = INTERNAL_TOKEN if case.operation.path.startswith("/internal/") else TOKEN
    return {"Authorization": f"Bearer {token}"}


@QUICK
@api.parametrize()
def test_every_response_is_documented_and_no_server_error(case: Case[Any]) -> None:
    # Left out: positive_data_acceptance, because rules the schema cannot state (a connector type
    # that exists, a cursor for incremental streams) rightly answer 422 to schema-valid input;
    # negative_data_rejection, because pydantic's lax mode takes `false` or `"5"` for an integer.
    case.call_and_validate(headers=_headers(case), additional_checks=OURS,
                           excluded_checks=[positive_data_acceptance, negative_data_rejection])


@COMBINED
@embedded.parametrize()
def test_the_embedded_platform_answers_every_request_as_documented(case: Case[Any]) -> None:
    # The same checks as the per-service test above, over the single OpenAPI of `tidemark up`.
    case.call_and_validate(headers=_headers(case), additional_checks=OURS,
                           excluded_checks=[positive_data_acceptance, negative_data_rejection])


@THOROUGH
@edges.parametrize()
def test_edge_values_never_cause_a_server_error(case: Case[Any]) -> None:
    # An edge value may make a valid request invalid, so the checks that judge the request's
    # validity stay with the test above; the answer must still be a documented non-5xx one.
    case.call_and_validate(
        headers=_headers(case),
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
                *OURS],
    )
