"""The embedded platform: every service in one process on one port, SQLite databases,
a local Iceberg warehouse and a local Kafka-protocol broker, all under one home directory."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from tidemark.api.app import build_app
from tidemark.bus import Bus
from tidemark.bus.kafka import KafkaBus
from tidemark.service import ServiceDefinition
from tidemark.settings import DatabaseSettings, KafkaSettings, PlatformSettings
from tidemark_cli.localbroker import LOCAL_FETCH_MAX_WAIT_MS, LOCAL_HEARTBEAT_INTERVAL_MS, LOCAL_SESSION_TIMEOUT_MS
from tidemark_connector.app import DEFINITION as CONNECTOR
from tidemark_connector.settings import ConnectorSettings
from tidemark_impact.app import DEFINITION as IMPACT
from tidemark_impact.settings import ImpactSettings
from tidemark_ingest.app import DEFINITION as INGEST
from tidemark_ingest.settings import IngestSettings
from tidemark_jobs.app import DEFINITION as JOBS
from tidemark_jobs.settings import JobsSettings
from tidemark_orchestrator.app import DEFINITION as ORCHESTRATOR
from tidemark_orchestrator.app import definition as orchestrator_definition
from tidemark_orchestrator.settings import OrchestratorSettings
from tidemark_schema.app import DEFINITION as SCHEMA
from tidemark_schema.app import definition as schema_definition
from tidemark_schema.settings import SchemaSettings

IN_PROCESS = "http://embedded"

SERVICES: list[tuple[ServiceDefinition[Any, Any], type[Any]]] = [
    (CONNECTOR, ConnectorSettings),
    (ORCHESTRATOR, OrchestratorSettings),
    (INGEST, IngestSettings),
    (JOBS, JobsSettings),
    (SCHEMA, SchemaSettings),
    (IMPACT, ImpactSettings),
]


@dataclass(frozen=True)
class Embedded:
    home: Path
    url: str
    api_token: str
    internal_token: str
    kafka: KafkaSettings
    log_format: str = "text"


def _token_file(path: Path, env: str | None) -> str:
    """The token from the environment, else the one saved before, else a new one (saved 0600)."""
    if env:
        return env
    if path.is_file():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def prepare(home: Path, host: str, port: int, bootstrap_servers: str, log_format: str = "text", *,
            local_broker: bool = False) -> Embedded:
    """``local_broker``: the broker is our own tansu (see :mod:`tidemark_cli.localbroker`), which lets
    consumer groups use a short session, so they join, and the first run starts, within a second, and a
    short fetch wait, so each event reaches its consumers within about 0.1 s."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    platform = PlatformSettings()
    api = platform.api_token.get_secret_value() if platform.api_token else None
    internal = platform.internal_token.get_secret_value() if platform.internal_token else None
    return Embedded(
        home=home,
        url=f"http://{host}:{port}",
        api_token=_token_file(home / "token", api),
        internal_token=_token_file(home / "internal_token", internal),
        kafka=_kafka(bootstrap_servers, local_broker),
        log_format=log_format,
    )


def _kafka(bootstrap_servers: str, local_broker: bool) -> KafkaSettings:
    if local_broker:
        return KafkaSettings(bootstrap_servers=bootstrap_servers,
                             session_timeout_ms=LOCAL_SESSION_TIMEOUT_MS,
                             heartbeat_interval_ms=LOCAL_HEARTBEAT_INTERVAL_MS,
                             fetch_max_wait_ms=LOCAL_FETCH_MAX_WAIT_MS)
    # A Kafka cluster refuses sessions shorter than its group.min.session.timeout.ms (6 s by default).
    return KafkaSettings(bootstrap_servers=bootstrap_servers, session_timeout_ms=10_000,
                         heartbeat_interval_ms=1_000)


def service_settings(env: Embedded) -> list[tuple[ServiceDefinition[Any, Any], Any]]:
    platform = PlatformSettings(home=env.home, api_token=SecretStr(env.api_token),
                                internal_token=SecretStr(env.internal_token), environment="development")
    built: list[tuple[ServiceDefinition[Any, Any], Any]] = []
    for definition, settings_type in SERVICES:
        kwargs: dict[str, Any] = {
            "platform": platform,
            "database": DatabaseSettings(url=f"sqlite+aiosqlite:///{env.home / (definition.name + '.db')}"),
            "kafka": env.kafka,
            "outbox_poll_seconds": 0.5,
            "log_format": env.log_format,
        }
        if definition is INGEST:
            # Workers are other processes: they reach this one's connector-svc over loopback.
            kwargs["connector_url"] = env.url
        if definition is ORCHESTRATOR or definition is SCHEMA:
            kwargs["connector_url"] = IN_PROCESS  # see create_embedded_app
        built.append((definition, settings_type(**kwargs)))
    return built


class _Itself:
    """An ASGI app that forwards to the platform's app once it exists (it is built after its services)."""

    app: FastAPI | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "the embedded app is not built yet"
        await self.app(scope, receive, send)


def create_embedded_app(env: Embedded, bus: Bus | None = None) -> FastAPI:
    """The platform's one app. ``bus`` replaces the broker (tests fuzz the app on a memory bus)."""
    itself = _Itself()
    # The orchestrator and schema-svc ask connector-svc for catalogs and configs in-process: same app,
    # no socket, no port to reach.
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=itself), base_url=IN_PROCESS)
    in_process: dict[str, ServiceDefinition[Any, Any]] = {
        ORCHESTRATOR.name: orchestrator_definition(http), SCHEMA.name: schema_definition(http)}
    services = [(in_process.get(definition.name, definition), settings)
                for definition, settings in service_settings(env)]
    # One producer and one set of consumer groups for the whole process.
    shared = bus if bus is not None else KafkaBus(env.kafka, client_id="tidemark-embedded")
    itself.app = build_app(services, title="Tidemark (embedded)", bus=shared, migrate=True)
    return itself.app
