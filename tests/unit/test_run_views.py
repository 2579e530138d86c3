"""Which API is the truth for runs, as each service's OpenAPI document says it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.settings import DatabaseSettings
from tidemark_ingest.app import DEFINITION as INGEST
from tidemark_ingest.settings import IngestSettings
from tidemark_jobs.app import DEFINITION as JOBS
from tidemark_jobs.settings import JobsSettings
from tidemark_orchestrator.app import definition as orchestrator
from tidemark_orchestrator.settings import OrchestratorSettings

pytestmark = pytest.mark.unit


def document(tmp_path: Path, name: str) -> dict[str, Any]:
    # The document only: the apps are never started.
    database = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/{name}.db")
    services: dict[str, Any] = {
        "jobs": (JOBS, JobsSettings(database=database, bus="memory")),
        "orchestrator": (orchestrator(), OrchestratorSettings(database=database, bus="memory")),
        "ingest": (INGEST, IngestSettings(database=database, bus="memory")),
    }
    app: FastAPI = build_app([services[name]], title=name, bus=MemoryBus())
    return app.openapi()


def operation(doc: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    found: dict[str, Any] = doc["paths"][path][method]
    return found


def test_every_run_view_and_the_trigger_answer_name_the_run_id_run_id(tmp_path: Path) -> None:
    views = [
        (document(tmp_path, "jobs"), "/v1/runs/{run_id}", "get", "200"),
        (document(tmp_path, "ingest"), "/v1/workers/{run_id}", "get", "200"),
        (document(tmp_path, "orchestrator"), "/v1/pipelines/{pipeline_id}/runs", "post", "202"),
    ]
    for doc, path, method, status in views:
        ref = operation(doc, path, method)["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        properties = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"]
        assert "run_id" in properties, path
        assert "id" not in properties, path


def test_the_read_api_is_jobs_and_the_other_run_views_say_so(tmp_path: Path) -> None:
    jobs = document(tmp_path, "jobs")
    assert "The read API for runs" in operation(jobs, "/v1/runs")["description"]

    ingest = document(tmp_path, "ingest")
    for path in ("/v1/workers", "/v1/workers/{run_id}"):
        worker = operation(ingest, path)
        assert worker["tags"] == ["workers (operational)"]
        assert "Operational view" in worker["description"]
        assert "`GET /v1/runs`" in worker["description"]

    command_side = operation(document(tmp_path, "orchestrator"), "/v1/pipelines/{pipeline_id}/runs")
    assert "command side" in command_side["summary"]
    assert "not the read API" in command_side["description"]
    assert "`GET /v1/runs?pipeline_id=`" in command_side["description"]
