"""Runs launched as Kubernetes Jobs, through ingest-svc's own launch loop and exit path: the Job carries
the pipeline's worker block and timeout, a failed Job fails its run with the reason in words, a
cancel deletes the Job and ends the run cancelled, and a restarted service adopts a running Job
instead of launching the run again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.fixtures.kube import kube, namespace
from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.db import utcnow
from tidemark.events import DestinationSpec, Envelope, PipelineSpec, RunRequested, RunStatus, StreamSpec, Topic
from tidemark.events.contracts import WorkerOptions
from tidemark.ids import new_id
from tidemark.service import ServiceRuntime
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_ingest import logic, repository
from tidemark_ingest.app import DEFINITION
from tidemark_ingest.deps import IngestState
from tidemark_ingest.launchers.k8s.client import KubeJobs
from tidemark_ingest.launchers.k8s.manifest import job_name
from tidemark_ingest.launchers.kubernetes import KubernetesLauncher
from tidemark_ingest.models import WorkerRun
from tidemark_ingest.settings import IngestSettings
from tidemark_testing.apps import running
from tidemark_testing.kube_api import FakeKubeApi

__all__ = ["kube", "namespace"]  # the fixtures

pytestmark = pytest.mark.unit


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    settings = IngestSettings(
        platform=PlatformSettings(home=tmp_path, internal_token=SecretStr("internal")),
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/ingest.db"),
        bus="memory", launcher="kubernetes", stop_grace_seconds=1,
        kubernetes={"worker_secret": "tidemark-worker", "watch_seconds": 1, "poll_seconds": 0.05},
    )
    rt = ServiceRuntime(DEFINITION, settings, bus=MemoryBus())
    await rt.migrate()
    yield rt
    await rt.engine.dispose()


async def launcher_for(rt: ServiceRuntime, kube: FakeKubeApi, namespace: str) -> KubernetesLauncher:
    launcher = KubernetesLauncher(rt.settings, logic.worker_exited(rt), api=KubeJobs(kube.api_client(), namespace))
    rt._state = IngestState(launcher=launcher)
    await launcher.start()
    await asyncio.wait_for(launcher.synced.wait(), 5)
    return launcher


async def queue_run(rt: ServiceRuntime, worker: dict[str, object] | None = None,
                    limit: int | None = None) -> RunRequested:
    event = RunRequested(
        run_id=new_id(),
        pipeline=PipelineSpec(pipeline_id=new_id(), name="p", connection_id=new_id(),
                              streams=[StreamSpec(name="main.orders")], destination=DestinationSpec(),
                              worker=WorkerOptions.model_validate(worker) if worker else None),
        trigger="manual", timeout_seconds=limit,
    )
    async with rt.transaction() as session:
        assert await repository.add_worker_run(session, event, "kubernetes")
    return event


async def run_of(rt: ServiceRuntime, run_id: uuid.UUID) -> WorkerRun:
    async with rt.sessions() as session:
        return await repository.require_worker_run(session, run_id)


async def ended(rt: ServiceRuntime, run_id: uuid.UUID, seconds: float = 5) -> WorkerRun:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (run := await run_of(rt, run_id)).status in ("queued", "starting", "running"):
        if loop.time() > deadline:
            raise AssertionError(f"run still {run.status}")
        await asyncio.sleep(0.02)
    return run


async def test_a_launched_job_carries_the_pipelines_worker_block_and_its_failure_fails_the_run(
        runtime: ServiceRuntime, kube: FakeKubeApi, namespace: str) -> None:
    launcher = await launcher_for(runtime, kube, namespace)
    event = await queue_run(runtime, worker={"resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
                                             "node_selector": {"pool": "etl"}}, limit=600)
    assert await logic.launch_queued(runtime, launcher) == 1
    run = await run_of(runtime, event.run_id)
    name = job_name(event.run_id)
    assert run.worker_ref == name
    job = kube.job(name, namespace)
    assert job is not None
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}}
    assert pod["nodeSelector"] == {"pool": "etl"}
    assert job["spec"]["activeDeadlineSeconds"] == 900
    assert job["metadata"]["labels"]["tidemark.io/pipeline-id"] == str(event.pipeline.pipeline_id)

    kube.add_pod(name, {"phase": "Failed", "containerStatuses": [
        {"name": "worker", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}, namespace=namespace)
    kube.finish_job(name, "Failed", "BackoffLimitExceeded", namespace=namespace)
    run = await ended(runtime, event.run_id)
    assert run.status == RunStatus.FAILED
    assert run.error == "worker container exited with code 2 (Error)"
    await launcher.close()


async def test_a_job_that_cannot_be_created_fails_its_run(runtime: ServiceRuntime, kube: FakeKubeApi,
                                                          namespace: str) -> None:
    runtime.settings.kubernetes.worker_secret = None  # no Secret to take the worker's secrets from
    launcher = await launcher_for(runtime, kube, namespace)
    event = await queue_run(runtime)
    assert await logic.launch_queued(runtime, launcher) == 0
    run = await run_of(runtime, event.run_id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.startswith("could not start a worker: no Secret for the worker's")
    assert kube.job(job_name(event.run_id), namespace) is None
    await launcher.close()


async def test_a_cancel_deletes_the_job_and_ends_the_run_cancelled(runtime: ServiceRuntime, kube: FakeKubeApi,
                                                                   namespace: str) -> None:
    launcher = await launcher_for(runtime, kube, namespace)
    event = await queue_run(runtime)
    await logic.launch_queued(runtime, launcher)
    async with runtime.transaction() as session:
        run = await repository.require_worker_run(session, event.run_id)
        run.status = RunStatus.RUNNING.value
        run.cancel_reason = "cancelled by user"
    await logic.stop_worker(runtime, event.run_id, job_name(event.run_id))
    run = await ended(runtime, event.run_id)
    assert run.status == RunStatus.CANCELLED
    assert run.error == "cancelled by user"
    assert kube.job(job_name(event.run_id), namespace) is None
    [delete] = [c for c in kube.calls_to("DELETE") if f"/{namespace}/" in c.path]
    assert delete.query["propagationPolicy"] == "Foreground"
    await launcher.close()


async def test_a_restarted_service_adopts_the_running_job_and_sees_its_end(
        runtime: ServiceRuntime, kube: FakeKubeApi, namespace: str) -> None:
    first = await launcher_for(runtime, kube, namespace)
    event = await queue_run(runtime, limit=60)
    assert await logic.launch_queued(runtime, first) == 1
    async with runtime.transaction() as session:
        run = await repository.require_worker_run(session, event.run_id)
        run.status = RunStatus.RUNNING.value  # the worker started it
    await first.close()  # the service stops; the Job runs on

    creates = len(kube.calls_to("POST"))
    second = await launcher_for(runtime, kube, namespace)
    assert second.live_runs() == {event.run_id}
    assert await logic.launch_queued(runtime, second) == 0  # claimed before: never launched twice
    kube.finish_job(job_name(event.run_id), "Failed", "DeadlineExceeded", namespace=namespace)
    run = await ended(runtime, event.run_id)
    assert run.status == RunStatus.FAILED
    assert run.error == "timeout: the worker's Job ran longer than its activeDeadlineSeconds (360s)"
    assert len(kube.calls_to("POST")) == creates
    await second.close()


async def test_a_pod_gets_the_start_timeout_not_the_heartbeat_timeout_to_start(runtime: ServiceRuntime) -> None:
    pulling, lost = await queue_run(runtime), await queue_run(runtime)
    async with runtime.transaction() as session:
        for event, ago in ((pulling, 120), (lost, 700)):
            run = await repository.require_worker_run(session, event.run_id)
            run.status = RunStatus.STARTING.value
            run.requested_at = utcnow() - timedelta(seconds=ago)
    # Both silent longer than heartbeat_timeout_seconds (60); only one longer than start_timeout_seconds (600).
    assert await logic.reap_silent(runtime) == 1
    assert (await run_of(runtime, pulling.run_id)).status == RunStatus.STARTING
    run = await run_of(runtime, lost.run_id)
    assert run.status == RunStatus.FAILED
    assert run.error == "worker did not start within 600s"


async def test_the_service_runs_with_the_kubernetes_launcher_from_its_settings(
        kube: FakeKubeApi, namespace: str, tmp_path: Path) -> None:
    """ingest-svc as a whole: its setup builds the launcher from the settings (a kubeconfig here), starts
    the watch, launches a requested run as a Job, and its shutdown leaves the Job running."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "{kube.url}"}}}}]
users: [{{name: me, user: {{token: abc}}}}]
contexts: [{{name: fake, context: {{cluster: fake, user: me}}}}]
current-context: fake
""")
    settings = IngestSettings(
        platform=PlatformSettings(home=tmp_path, internal_token=SecretStr("internal")),
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/svc.db"),
        auth=AuthSettings(tokens=[SecretStr("t")]), bus="memory", launcher="kubernetes",
        kubernetes={"in_cluster": False, "kubeconfig": kubeconfig, "namespace": namespace,
                    "worker_secret": "tidemark-worker", "watch_seconds": 1},
    )
    bus = MemoryBus()
    app = build_app([(DEFINITION, settings)], title="t", bus=bus, migrate=True)
    async with running(app, "t") as client:
        event = RunRequested(
            run_id=new_id(),
            pipeline=PipelineSpec(pipeline_id=new_id(), name="p", connection_id=new_id(),
                                  streams=[StreamSpec(name="main.orders")], destination=DestinationSpec()),
            trigger="manual")
        await bus.publish(Topic.RUNS, Envelope.wrap(event, source="orchestrator-svc"))
        for _ in range(200):
            if kube.job(job_name(event.run_id), namespace) is not None:
                break
            await asyncio.sleep(0.025)
        assert kube.job(job_name(event.run_id), namespace) is not None
        for _ in range(200):
            [worker] = [w for w in (await client.get("/v1/workers")).json() if w["run_id"] == str(event.run_id)]
            if worker["worker_ref"] is not None:
                break
            await asyncio.sleep(0.025)
        assert worker["launcher"] == "kubernetes"
        assert worker["worker_ref"] == job_name(event.run_id)
    assert kube.job(job_name(event.run_id), namespace) is not None  # the Job outlives the service
    assert not [c for c in kube.calls_to("DELETE") if f"/{namespace}/" in c.path]
