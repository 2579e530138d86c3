"""ingest-svc: launches and supervises the workers that load streams into the lakehouse."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from tidemark.api.app import build_app
from tidemark.events import RunFinished, RunRequested, Topic
from tidemark.service import ServiceDefinition, ServiceRuntime, handle_types
from tidemark_ingest import logic
from tidemark_ingest.launchers import Launcher, create_launcher
from tidemark_ingest.models import TABLES, Base
from tidemark_ingest.routes import router
from tidemark_ingest.settings import IngestSettings
from tidemark_ingest.table_routes import router as tables_router

LAUNCHER_EXTRA = "launcher"


async def _setup(runtime: ServiceRuntime) -> None:
    launcher = create_launcher(runtime.settings, logic.worker_exited(runtime))
    runtime.extras[LAUNCHER_EXTRA] = launcher
    wakeup = asyncio.Event()
    runtime.consume(
        "runs",
        [Topic.RUNS],
        handle_types({RunRequested: logic.on_run_requested(runtime, wakeup), RunFinished: logic.on_run_finished}),
    )
    runtime.spawn(logic.launch_loop(runtime, launcher, wakeup), "launch-loop")
    runtime.spawn(logic.reap_loop(runtime), "heartbeat-reaper")


async def _teardown(runtime: ServiceRuntime) -> None:
    launcher: Launcher | None = runtime.extras.get(LAUNCHER_EXTRA)
    if launcher is not None:
        await launcher.close()


DEFINITION = ServiceDefinition(
    name="ingest",
    title="Tidemark ingest",
    metadata=Base.metadata,
    tables=TABLES,
    migrations="tidemark_ingest:migrations",
    routers=[router, tables_router],
    setup=_setup,
    teardown=_teardown,
)


def create_app(settings: IngestSettings) -> FastAPI:
    return build_app([(DEFINITION, settings)], title=DEFINITION.title)
