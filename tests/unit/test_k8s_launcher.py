"""The Kubernetes launcher against a fake API server that speaks the real HTTP API to the official
client: Jobs created once (a 409 adopts), watched with resync on 410 Gone, failures reported in words,
stopped with foreground deletion, adopted after a restart, and never blocking the event loop."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from pydantic import SecretStr

from tests.fixtures.helm import find, rendered
from tests.fixtures.kube import kube, namespace
from tidemark.errors import ConfigError, ConflictError
from tidemark.events import DestinationSpec, PipelineSpec, RunRequested, StreamSpec
from tidemark.ids import new_id
from tidemark.settings import PlatformSettings
from tidemark_ingest.launchers import LocalLauncher, create_launcher, worker_spec
from tidemark_ingest.launchers.k8s.client import KubeJobs
from tidemark_ingest.launchers.k8s.manifest import job_manifest, job_name
from tidemark_ingest.launchers.k8s.status import FAILURE_REASONS
from tidemark_ingest.launchers.kubernetes import KubernetesLauncher
from tidemark_ingest.metrics import WATCH_RESYNCS, WORKER_ADOPTIONS, WORKER_FAILURES, WORKER_LAUNCHES
from tidemark_ingest.settings import IngestSettings
from tidemark_testing.kube_api import FakeKubeApi, fake_kube_api

__all__ = ["kube", "namespace"]  # the fixtures

pytestmark = pytest.mark.unit

JOBS = "/jobs"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Exits:
    """The exit callback: what the launcher reported, in order."""

    seen: list[tuple[uuid.UUID, int, str | None]] = field(default_factory=list)

    async def __call__(self, run_id: uuid.UUID, code: int, reason: str | None = None) -> None:
        self.seen.append((run_id, code, reason))

    def of(self, run_id: uuid.UUID) -> list[tuple[int, str | None]]:
        return [(code, reason) for r, code, reason in self.seen if r == run_id]


def k8s_settings(tmp_path: Path, **kubernetes: Any) -> IngestSettings:
    return IngestSettings(
        platform=PlatformSettings(home=tmp_path, internal_token=SecretStr("internal")),
        launcher="kubernetes",
        stop_grace_seconds=2,
        kubernetes={"worker_secret": "tidemark-worker", "watch_seconds": 1, "poll_seconds": 0.05,
                    "stuck_deadline_seconds": 60, **kubernetes},
    )


@pytest.fixture
def settings(tmp_path: Path) -> IngestSettings:
    return k8s_settings(tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def exits() -> Exits:
    return Exits()


LauncherFactory = Callable[..., KubernetesLauncher]


@pytest.fixture
async def make_launcher(kube: FakeKubeApi, namespace: str, settings: IngestSettings, clock: FakeClock,
                        exits: Exits) -> AsyncIterator[LauncherFactory]:
    made: list[KubernetesLauncher] = []

    def make(server: FakeKubeApi = kube, start: bool = True) -> KubernetesLauncher:
        launcher = KubernetesLauncher(settings, exits, api=KubeJobs(server.api_client(), namespace), clock=clock)
        made.append(launcher)
        return launcher

    yield make
    for launcher in made:
        await launcher.close()
    # Every Job any launcher sent in this test is one the real API server would take.
    for call in kube.calls_to("POST", JOBS):
        if f"/namespaces/{namespace}/" in call.path:
            assert call.body is not None
            kubernetes_validate.validate(call.body, "1.33.0", strict=True)


async def started(launcher: KubernetesLauncher) -> KubernetesLauncher:
    await launcher.start()
    await asyncio.wait_for(launcher.synced.wait(), 5)
    return launcher


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def run_spec(settings: IngestSettings, timeout: int | None = None) -> Any:
    event = RunRequested(
        run_id=new_id(),
        pipeline=PipelineSpec(pipeline_id=new_id(), name="p", connection_id=new_id(),
                              streams=[StreamSpec(name="public.orders")], destination=DestinationSpec()),
        trigger="manual", timeout_seconds=timeout,
    )
    return worker_spec(settings, event.run_id, event)


def terminated(code: int, reason: str) -> dict[str, Any]:
    return {"phase": "Failed", "containerStatuses": [
        {"name": "worker", "state": {"terminated": {"exitCode": code, "reason": reason}}}]}


def waiting(reason: str, message: str) -> dict[str, Any]:
    return {"phase": "Pending", "containerStatuses": [
        {"name": "worker", "state": {"waiting": {"reason": reason, "message": message}}}]}


def posts(kube: FakeKubeApi, namespace: str) -> int:
    return len([c for c in kube.calls_to("POST", JOBS) if f"/namespaces/{namespace}/" in c.path])


def test_every_series_a_launcher_can_move_exists_at_zero_once_it_is_chosen(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, tmp_path: Path) -> None:
    # So the first stuck pod or failed launch shows as an increase: a series born at 1 has none.
    counters = (WORKER_LAUNCHES, WORKER_FAILURES, WORKER_ADOPTIONS, WATCH_RESYNCS)
    for counter in counters:
        counter.clear()
    KubernetesLauncher(settings, Exits(), api=KubeJobs(kube.api_client(), namespace))
    LocalLauncher(k8s_settings(tmp_path), Exits(), command=["true"])

    def series(counter: Any) -> dict[tuple[str, ...], float]:
        return {tuple(s.labels.values()): s.value for m in counter.collect() for s in m.samples
                if s.name.endswith("_total")}

    assert series(WORKER_LAUNCHES) == {(launcher, outcome): 0 for launcher in ("kubernetes", "local")
                                       for outcome in ("started", "failed")}
    assert series(WORKER_FAILURES) == {("kubernetes", reason): 0 for reason in FAILURE_REASONS}
    assert series(WORKER_ADOPTIONS) == {("kubernetes", "create_conflict"): 0, ("kubernetes", "listed"): 0}
    assert series(WATCH_RESYNCS) == {("expired",): 0, ("error",): 0}


async def test_a_launch_creates_one_job_and_a_retried_create_adopts_it(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory) -> None:
    launcher = await started(make_launcher())
    spec = run_spec(settings)
    name = await launcher.launch(spec)
    assert name == job_name(spec.run_id)
    job = kube.job(name, namespace)
    assert job is not None
    assert job["spec"]["backoffLimit"] == 0
    # The same run again (a retried launch, or a second replica): 409, and the Job is adopted.
    assert await launcher.launch(spec) == name
    assert posts(kube, namespace) == 2
    assert [j["metadata"]["name"] for j in kube.jobs() if j["metadata"]["namespace"] == namespace] == [name]
    assert launcher.live_runs() == {spec.run_id}


async def test_a_job_of_that_name_for_another_run_is_a_conflict(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory) -> None:
    launcher = make_launcher()
    mine, other = run_spec(settings), run_spec(settings)
    squatter = job_manifest(other, settings.kubernetes, namespace, 2)
    squatter["metadata"]["name"] = job_name(mine.run_id)
    KubeJobs(kube.api_client(), namespace).create_job(squatter)
    with pytest.raises(ConflictError, match="for another run"):
        await launcher.launch(mine)


async def test_a_completed_job_reports_a_clean_exit(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory,
        exits: Exits) -> None:
    launcher = await started(make_launcher())
    spec = run_spec(settings)
    name = await launcher.launch(spec)
    kube.finish_job(name, "Complete", namespace=namespace)
    await until(lambda: bool(exits.of(spec.run_id)))
    assert exits.of(spec.run_id) == [(0, None)]
    assert launcher.live_runs() == set()


async def test_a_failed_job_reports_the_containers_exit_code_and_reason(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory,
        exits: Exits) -> None:
    launcher = await started(make_launcher())
    spec = run_spec(settings)
    name = await launcher.launch(spec)
    kube.add_pod(name, terminated(137, "OOMKilled"), namespace=namespace)
    kube.finish_job(name, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit",
                    namespace=namespace)
    await until(lambda: bool(exits.of(spec.run_id)))
    assert exits.of(spec.run_id) == [(137, "worker container exited with code 137 (OOMKilled)")]


async def test_a_job_past_its_deadline_is_a_timeout(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory,
        exits: Exits) -> None:
    launcher = await started(make_launcher())
    spec = run_spec(settings, timeout=600)
    name = await launcher.launch(spec)
    kube.finish_job(name, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline",
                    namespace=namespace)
    await until(lambda: bool(exits.of(spec.run_id)))
    [(code, reason)] = exits.of(spec.run_id)
    assert code != 0
    assert reason == "timeout: the worker's Job ran longer than its activeDeadlineSeconds (900s)"


async def test_a_job_deleted_by_someone_else_fails_its_run(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory,
        exits: Exits) -> None:
    launcher = await started(make_launcher())
    spec = run_spec(settings)
    name = await launcher.launch(spec)
    vanished_before = WORKER_FAILURES.labels("kubernetes", "vanished")._value.get()
    kube.remove_job(name, namespace=namespace)
    await until(lambda: bool(exits.of(spec.run_id)))
    assert WORKER_FAILURES.labels("kubernetes", "vanished")._value.get() == vanished_before + 1
    assert exits.of(spec.run_id) == [(1, f"the worker's Kubernetes Job {name} was deleted while the run was live")]


@pytest.mark.parametrize(("status", "words"), [
    (waiting("ImagePullBackOff", 'Back-off pulling image "tidemark:nope"'),
     'ImagePullBackOff: Back-off pulling image "tidemark:nope"'),
    (waiting("CrashLoopBackOff", "back-off 5m0s restarting failed container"),
     "CrashLoopBackOff: back-off 5m0s restarting failed container"),
    (waiting("CreateContainerConfigError", 'secret "tidemark-worker" not found'),
     'CreateContainerConfigError: secret "tidemark-worker" not found'),
    ({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                          "message": "0/3 nodes are available: 3 Insufficient memory."}]},
     "Unschedulable: 0/3 nodes are available: 3 Insufficient memory."),
])
async def test_a_pod_stuck_past_the_deadline_fails_its_run_in_words(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory,
        exits: Exits, clock: FakeClock, status: dict[str, Any], words: str) -> None:
    launcher = await started(make_launcher())
    spec, patient = run_spec(settings), run_spec(settings)
    name = await launcher.launch(spec)
    await launcher.launch(patient)
    kube.add_pod(name, status, namespace=namespace)
    await launcher.check_stuck()
    clock.now += 59  # stuck, but not for stuck_deadline_seconds (60) yet
    await launcher.check_stuck()
    assert exits.seen == []
    clock.now += 2
    await until(lambda: bool(exits.of(spec.run_id)))  # the poll loop sees it
    assert exits.of(spec.run_id) == [(1, f"the worker's pod was stuck for more than 60s: {words}")]
    # Its Job is deleted, and that deletion is not reported a second time as a vanished Job.
    await until(lambda: kube.job(name, namespace) is None)
    await asyncio.sleep(0.2)
    assert len(exits.of(spec.run_id)) == 1
    assert exits.of(patient.run_id) == []
    assert launcher.live_runs() == {patient.run_id}


async def test_a_pod_that_recovers_before_the_deadline_is_left_alone(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory,
        exits: Exits, clock: FakeClock) -> None:
    launcher = await started(make_launcher())
    spec = run_spec(settings)
    name = await launcher.launch(spec)
    kube.add_pod(name, waiting("ErrImagePull", "registry timeout"), namespace=namespace)
    await launcher.check_stuck()
    clock.now += 30
    kube.add_pod(name, {"phase": "Running", "containerStatuses": [{"name": "worker", "state": {"running": {}}}]},
                 namespace=namespace)
    await launcher.check_stuck()
    kube.add_pod(name, waiting("ErrImagePull", "registry timeout"), namespace=namespace)
    clock.now += 45  # 75 s since it was first stuck, but only just stuck again
    await launcher.check_stuck()
    assert exits.seen == []
    assert launcher.live_runs() == {spec.run_id}


async def test_the_watch_lists_again_after_410_gone_and_misses_nothing(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory,
        exits: Exits) -> None:
    launcher = await started(make_launcher())
    ended, vanished = run_spec(settings), run_spec(settings)
    ended_job = await launcher.launch(ended)
    vanished_job = await launcher.launch(vanished)
    expired_before = WATCH_RESYNCS.labels("expired")._value.get()
    lists_before = len([c for c in kube.calls_to("GET", JOBS) if "watch" not in c.query
                        and f"/namespaces/{namespace}/" in c.path])
    kube.expire_watches()
    kube.finish_job(ended_job, "Complete", namespace=namespace)
    kube.remove_job(vanished_job, namespace=namespace)
    await until(lambda: bool(exits.of(ended.run_id)) and bool(exits.of(vanished.run_id)))
    assert exits.of(ended.run_id) == [(0, None)]
    gone = f"the worker's Kubernetes Job {vanished_job} was deleted while the run was live"
    assert exits.of(vanished.run_id)[0][1] == gone
    assert WATCH_RESYNCS.labels("expired")._value.get() > expired_before
    lists = [c for c in kube.calls_to("GET", JOBS) if "watch" not in c.query and f"/namespaces/{namespace}/" in c.path]
    assert len(lists) > lists_before
    # The next watch goes on from the new list's resourceVersion, not the expired one.
    await until(lambda: any(c.query.get("resourceVersion") not in (None, "0") and "watch" in c.query
                            for c in kube.calls_to("GET", JOBS)[-3:]))


async def test_stop_deletes_the_job_in_the_foreground(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory,
        exits: Exits) -> None:
    launcher = await started(make_launcher())
    spec = run_spec(settings)
    name = await launcher.launch(spec)
    assert await launcher.stop(spec.run_id, name, grace_seconds=2)
    [delete] = [c for c in kube.calls_to("DELETE") if c.path.endswith(f"/{namespace}/jobs/{name}")]
    assert delete.query.get("propagationPolicy") == "Foreground" or \
        (delete.body or {}).get("propagationPolicy") == "Foreground"
    assert kube.job(name, namespace) is None
    # The pod's grace period is the service's own stop_grace_seconds.
    await asyncio.sleep(0.2)
    assert exits.seen == []  # a stop is not a vanished Job: the service ends the run as stopped
    assert launcher.live_runs() == set()
    assert not await launcher.stop(spec.run_id, name, grace_seconds=2)


async def test_after_a_restart_running_jobs_are_adopted_not_created_again(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory,
        exits: Exits) -> None:
    before = await started(make_launcher())
    running, done = run_spec(settings), run_spec(settings)
    running_job = await before.launch(running)
    done_job = await before.launch(done)
    await before.close()
    kube.finish_job(done_job, "Failed", "BackoffLimitExceeded", namespace=namespace)  # while nobody watched
    creates = posts(kube, namespace)

    after = await started(make_launcher())
    assert after.live_runs() == {running.run_id}
    # The Job that failed while the service was down is reported, so its run ends.
    await until(lambda: bool(exits.of(done.run_id)))
    assert exits.of(done.run_id)[0][1] == "Kubernetes Job failed (BackoffLimitExceeded)"
    kube.finish_job(running_job, "Complete", namespace=namespace)
    await until(lambda: bool(exits.of(running.run_id)))
    assert exits.of(running.run_id) == [(0, None)]
    assert posts(kube, namespace) == creates


@pytest.mark.timeout(60)  # a call made on the loop would also starve the watch's hand-over: a hang, not a gap
async def test_api_calls_never_block_the_event_loop(namespace: str, settings: IngestSettings,
                                                    make_launcher: LauncherFactory) -> None:
    with fake_kube_api(latency=0.6) as slow:
        launcher = make_launcher(slow)
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        try:
            await started(launcher)
            spec = run_spec(settings)
            name = await launcher.launch(spec)
            await launcher.check_stuck()
            assert await launcher.stop(spec.run_id, name, grace_seconds=1)
            await launcher.close()
        finally:
            ticking.cancel()
        # Every call took 0.6 s at the server; had one run on the loop, a tick would have waited as long.
        # (The margin is for a loaded machine, where a 10 ms sleep may oversleep by a lot.)
        assert len(gaps) > 50
        assert max(gaps) < 0.5


def test_outside_a_cluster_without_a_kubeconfig_the_launcher_refuses_to_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError, match="kubernetes: cannot load the API's address and credentials"):
        create_launcher(k8s_settings(tmp_path), Exits())
    with pytest.raises(ConfigError, match="kubernetes: cannot load"):
        create_launcher(k8s_settings(tmp_path, in_cluster=False, kubeconfig=tmp_path / "missing"), Exits())


async def test_a_kubeconfig_points_the_launcher_at_its_cluster(kube: FakeKubeApi, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "{kube.url}"}}}}]
users: [{{name: me, user: {{token: abc}}}}]
contexts: [{{name: fake, context: {{cluster: fake, user: me}}}}]
current-context: fake
""")
    settings = k8s_settings(tmp_path, in_cluster=False, kubeconfig=kubeconfig, namespace="from-kubeconfig")
    launcher = create_launcher(settings, Exits())
    assert isinstance(launcher, KubernetesLauncher)
    assert launcher.namespace == "from-kubeconfig"
    spec = run_spec(settings)
    await launcher.launch(spec)
    assert kube.job(job_name(spec.run_id), "from-kubeconfig") is not None
    [create] = [c for c in kube.calls_to("POST") if "/from-kubeconfig/" in c.path]
    assert create.body is not None
    assert create.body["metadata"]["name"] == job_name(spec.run_id)


async def test_adopting_a_job_that_already_ended_reports_its_end(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory,
        exits: Exits) -> None:
    spec = run_spec(settings)
    jobs = KubeJobs(kube.api_client(), namespace)
    jobs.create_job(job_manifest(spec, settings.kubernetes, namespace, 2))
    kube.finish_job(job_name(spec.run_id), "Failed", "BackoffLimitExceeded", namespace=namespace)
    launcher = make_launcher()  # not watching: only the launch's adoption can see the end
    assert await launcher.launch(spec) == job_name(spec.run_id)
    assert exits.of(spec.run_id) == [(1, "Kubernetes Job failed (BackoffLimitExceeded)")]
    assert launcher.live_runs() == set()


async def test_the_stuck_check_asks_only_for_pods_that_have_not_ended(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory,
        exits: Exits, clock: FakeClock) -> None:
    launcher = make_launcher()
    spec = run_spec(settings)
    name = await launcher.launch(spec)
    # A pod that ended is not looked at, whatever its last container state said.
    kube.add_pod(name, {**waiting("ErrImagePull", "x"), "phase": "Failed"}, namespace=namespace)
    await launcher.check_stuck()
    clock.now += 120
    await launcher.check_stuck()
    listed = [c for c in kube.calls_to("GET", "/pods") if f"/{namespace}/" in c.path]
    assert {c.query["fieldSelector"] for c in listed} == {"status.phase!=Succeeded,status.phase!=Failed"}
    assert exits.seen == []


async def test_a_failed_report_is_retried_so_the_reason_is_not_lost(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, clock: FakeClock) -> None:
    calls: list[str | None] = []
    pauses: list[float] = []

    async def flaky(run_id: uuid.UUID, code: int, reason: str | None = None) -> None:
        calls.append(reason)
        if len(calls) < 3:
            raise ConnectionError("database restarting")

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await asyncio.sleep(0)

    launcher = KubernetesLauncher(settings, flaky, api=KubeJobs(kube.api_client(), namespace), clock=clock,
                                  sleep=sleep)
    spec = run_spec(settings)
    name = await launcher.launch(spec)
    kube.remove_job(name, namespace=namespace)
    await launcher.start()
    await until(lambda: len(calls) == 3)
    gone = f"the worker's Kubernetes Job {name} was deleted while the run was live"
    assert calls == [gone, gone, gone]
    # Backing off between tries (the stuck-pod poll sleeps on the same sleeper, every poll_seconds).
    assert [p for p in pauses if p != settings.kubernetes.poll_seconds][:2] == [0.5, 2]
    await launcher.close()


def rbac_request(method: str, path: str, query: dict[str, str]) -> tuple[str, str, str]:
    """The (API group, resource, verb) Kubernetes' RBAC checks for one request to the Jobs or pods API."""
    match = re.fullmatch(r"/apis?/(?:(batch)/)?v1/namespaces/[^/]+/(jobs|pods)(/[^/]+)?", path)
    assert match, path
    group, resource, named = match.group(1) or "", match.group(2), match.group(3)
    watching = query.get("watch", "").lower() in ("true", "1")
    verb = {"POST": "create", "DELETE": "delete"}.get(method) or (
        "get" if named else "watch" if watching else "list")
    return group, resource, verb


async def test_the_charts_role_allows_every_request_the_launcher_makes_and_nothing_more_is_needed(
        kube: FakeKubeApi, namespace: str, settings: IngestSettings, make_launcher: LauncherFactory,
        clock: FakeClock, exits: Exits) -> None:
    # A whole life: list and watch, create, a 409 adopted, a stuck pod found and its Job deleted, a stop.
    launcher = await started(make_launcher())
    stuck, stopped = run_spec(settings), run_spec(settings)
    stuck_job = await launcher.launch(stuck)
    await launcher.launch(stuck)
    stopped_job = await launcher.launch(stopped)
    kube.add_pod(stuck_job, waiting("ImagePullBackOff", "nope"), namespace=namespace)
    await launcher.check_stuck()
    clock.now += 61
    await launcher.check_stuck()
    await launcher.stop(stopped.run_id, stopped_job, grace_seconds=1)
    await until(lambda: bool(exits.of(stuck.run_id)))
    made = {rbac_request(c.method, c.path, c.query) for c in kube.calls if f"/namespaces/{namespace}/" in c.path}
    assert {("batch", "jobs", verb) for verb in ("create", "get", "list", "watch", "delete")} <= made
    assert ("", "pods", "list") in made

    _, docs = rendered("defaults")
    (role,) = find(docs, "Role")
    allowed = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert made <= allowed, sorted(made - allowed)
