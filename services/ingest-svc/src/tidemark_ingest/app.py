"""ingest-svc: launches and supervises the workers that load streams into the lakehouse."""

from __future__ import annotations

from fastapi import FastAPI

from tidemark.aio import cancel_and_wait
from tidemark.api.app import build_app
from tidemark.events import RunCancelRequested, RunFinished, RunRequested, Topic
from tidemark.service import ServiceDefinition
from tidemark_ingest import logic
from tidemark_ingest.deps import IngestRuntime, IngestState
from tidemark_ingest.launchers import create_launcher
from tidemark_ingest.maintenance_routes import router as maintenance_router
from tidemark_ingest.models import TABLES, Base
from tidemark_ingest.routes import router
from tidemark_ingest.settings import IngestSettings
from tidemark_ingest.table_routes import router as tables_router


async def _setup(runtime: IngestRuntime) -> IngestState:
    state = IngestState(launcher=create_launcher(runtime.settings, logic.worker_exited(runtime)))
    await state.launcher.start()
    runtime.consume("runs", [Topic.RUNS], {RunRequested: logic.on_run_requested, RunFinished: logic.on_run_finished,
                                           RunCancelRequested: logic.on_run_cancel_requested})
    runtime.spawn(logic.launch_loop(runtime, state.launcher, state.wakeup), "launch-loop")
    runtime.spawn(logic.reap_loop(runtime), "heartbeat-reaper")
    return state


async def _teardown(runtime: IngestRuntime) -> None:
    # close() stops every worker anyway; a cancel's stop need not outlive the service.
    await cancel_and_wait(list(runtime.state.stops))
    await runtime.state.launcher.close()


DEFINITION: ServiceDefinition[IngestSettings, IngestState] = ServiceDefinition(
    name="ingest",
    title="Tidemark ingest",
    metadata=Base.metadata,
    tables=TABLES,
    migrations="tidemark_ingest:migrations",
    routers=[router, tables_router, maintenance_router],
    setup=_setup,
    teardown=_teardown,
)


def create_app(settings: IngestSettings) -> FastAPI:
    return build_app([(DEFINITION, settings)], title=DEFINITION.title)
