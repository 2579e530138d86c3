"""The Kubernetes launcher against a real cluster: the API server accepts its Jobs, and the launcher sees
how they end (an exit code, an image that cannot be pulled) and stops them with foreground deletion.

Runs when a kubeconfig is present (``KUBECONFIG`` or ``~/.kube/config``) and ``TIDEMARK_TEST_K8S_IMAGE``
names an image with Python (the Tidemark image); Jobs go to ``TIDEMARK_TEST_K8S_NAMESPACE`` (default
``default``). The launcher's own service account needs the chart's RBAC (Jobs, pods, one Secret here).
No cluster can run on our build machines, so there it is skipped, saying why.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tidemark.settings import PlatformSettings
from tidemark_ingest.launchers import worker_spec
from tidemark_ingest.launchers.k8s.client import KubeJobs
from tidemark_ingest.launchers.kubernetes import KubernetesLauncher
from tidemark_ingest.launchers.spec import WorkerSpec
from tidemark_ingest.settings import IngestSettings

KUBECONFIG = Path(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]).expanduser()
IMAGE = os.environ.get("TIDEMARK_TEST_K8S_IMAGE", "")
NAMESPACE = os.environ.get("TIDEMARK_TEST_K8S_NAMESPACE", "default")
SECRET = f"tidemark-e2e-{uuid.uuid4().hex[:8]}"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not KUBECONFIG.is_file() or not IMAGE,
                       reason="needs a Kubernetes cluster: a kubeconfig (KUBECONFIG or ~/.kube/config) and "
                              "TIDEMARK_TEST_K8S_IMAGE naming the Tidemark image; "
                              f"kubeconfig {'found' if KUBECONFIG.is_file() else 'missing'}, "
                              f"image {'set' if IMAGE else 'not set'}"),
]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> IngestSettings:
    return IngestSettings(
        platform=PlatformSettings(home=tmp_path_factory.mktemp("home"), internal_token=SecretStr("e2e")),
        launcher="kubernetes", worker_image=IMAGE, stop_grace_seconds=5,
        kubernetes={"in_cluster": False, "kubeconfig": KUBECONFIG, "namespace": NAMESPACE, "worker_secret": SECRET,
                    "stuck_deadline_seconds": 20, "poll_seconds": 2, "watch_seconds": 20,
                    "ttl_seconds_after_finished": 120,
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}},
    )


@pytest.fixture(scope="module")
def worker_secret(settings: IngestSettings) -> Iterator[None]:
    """The Secret the workers' secret references point at (placeholder values: these workers read none)."""
    from kubernetes import client, config

    config.load_kube_config(config_file=str(KUBECONFIG))
    core = client.CoreV1Api()
    keys = {ref.name: "unused" for ref in worker_spec(settings, uuid.uuid4()).secrets}
    core.create_namespaced_secret(NAMESPACE, client.V1Secret(metadata=client.V1ObjectMeta(name=SECRET),
                                                             string_data=keys))
    yield
    core.delete_namespaced_secret(SECRET, NAMESPACE)


class Exits:
    def __init__(self) -> None:
        self.seen: dict[uuid.UUID, tuple[int, str | None]] = {}

    async def __call__(self, run_id: uuid.UUID, code: int, reason: str | None = None) -> None:
        self.seen[run_id] = (code, reason)

    async def wait(self, run_id: uuid.UUID, seconds: float = 240) -> tuple[int, str | None]:
        for _ in range(int(seconds * 4)):
            if run_id in self.seen:
                return self.seen[run_id]
            await asyncio.sleep(0.25)
        raise AssertionError(f"no end reported for run {run_id} within {seconds}s")


@pytest.fixture
async def launcher(settings: IngestSettings, worker_secret: None) -> AsyncIterator[tuple[KubernetesLauncher, Exits]]:
    exits = Exits()
    launched = KubernetesLauncher(settings, exits, api=KubeJobs.from_settings(settings.kubernetes))
    await launched.start()
    await asyncio.wait_for(launched.synced.wait(), 30)
    yield launched, exits
    await launched.close()


def python_worker(settings: IngestSettings, code: str, image: str | None = None) -> WorkerSpec:
    spec = worker_spec(settings, uuid.uuid4())
    return spec.model_copy(update={"command": ("python", "-c", code), "args": (), "image": image or spec.image})


async def test_a_job_that_exits_with_a_code_fails_with_that_code(
        launcher: tuple[KubernetesLauncher, Exits], settings: IngestSettings) -> None:
    launched, exits = launcher
    spec = python_worker(settings, "raise SystemExit(3)")
    await launched.launch(spec)
    assert await launched.launch(spec)  # a retried create adopts the same Job
    code, reason = await exits.wait(spec.run_id)
    assert code == 3
    assert reason is not None
    assert reason.startswith("worker container exited with code 3")


async def test_a_job_that_succeeds_reports_a_clean_exit(
        launcher: tuple[KubernetesLauncher, Exits], settings: IngestSettings) -> None:
    launched, exits = launcher
    spec = python_worker(settings, "print('ok')")
    await launched.launch(spec)
    assert await exits.wait(spec.run_id) == (0, None)


async def test_an_image_that_cannot_be_pulled_fails_the_run_in_words(
        launcher: tuple[KubernetesLauncher, Exits], settings: IngestSettings) -> None:
    launched, exits = launcher
    spec = python_worker(settings, "pass", image="tidemark.invalid/no-such-image:0")
    await launched.launch(spec)
    code, reason = await exits.wait(spec.run_id)
    assert code == 1
    assert reason is not None
    assert "stuck for more than 20s" in reason
    assert "ImagePullBackOff" in reason or "ErrImagePull" in reason or "InvalidImageName" in reason


async def test_stop_deletes_a_running_job(launcher: tuple[KubernetesLauncher, Exits],
                                          settings: IngestSettings) -> None:
    launched, exits = launcher
    spec = python_worker(settings, "import time; time.sleep(600)")
    name = await launched.launch(spec)
    assert await launched.stop(spec.run_id, name, grace_seconds=5)
    jobs = KubeJobs.from_settings(settings.kubernetes)
    assert await asyncio.to_thread(jobs.read_job, name) is None
    assert spec.run_id not in exits.seen  # stopped on purpose: not reported as vanished
