"""A pipeline's `worker` block (where its worker runs under the Kubernetes launcher): checked at the API
(a bad quantity or an unknown key is a 422 naming the exact field), stored, shown, and carried to the
worker in `run.requested`."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.fixtures.pipelines import Pipelines
from tidemark.events import RunRequested, Topic

pytestmark = pytest.mark.unit

WORKER = {
    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
    "node_selector": {"pool": "etl", "kubernetes.io/arch": "amd64"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "etl", "effect": "NoSchedule"},
                    {"operator": "Exists", "effect": "NoExecute", "toleration_seconds": 30}],
    "service_account": "tidemark-worker-etl",
}


def body(pipelines: Pipelines, name: str, **over: Any) -> dict[str, Any]:
    return {"name": name, "connection_id": pipelines.shop_id, "streams": [{"name": "main.orders"}], **over}


async def test_the_worker_block_is_stored_shown_and_sent_with_the_run(pipelines: Pipelines) -> None:
    client = pipelines.orchestrator
    created = await client.post("/v1/pipelines", json=body(pipelines, "worker-block", worker=WORKER,
                                                           timeout_seconds=600))
    assert created.status_code == 201, created.text
    shown = created.json()["worker"]
    assert shown["resources"] == WORKER["resources"]
    assert shown["node_selector"] == WORKER["node_selector"]
    assert shown["service_account"] == "tidemark-worker-etl"
    assert shown["tolerations"][1] == {"key": None, "operator": "Exists", "value": None, "effect": "NoExecute",
                                       "toleration_seconds": 30}
    pid = created.json()["id"]
    run = await client.post(f"/v1/pipelines/{pid}/runs")
    assert run.status_code == 202, run.text
    requested = None
    for _ in range(100):
        found = [e.payload_as(RunRequested) for e in pipelines.bus.published[Topic.RUNS]
                 if e.type == RunRequested.event_type and e.subject == run.json()["run_id"]]
        if found:
            requested = found[0]
            break
        await asyncio.sleep(0.05)
    assert requested is not None
    assert requested.timeout_seconds == 600
    assert requested.pipeline.worker is not None
    assert requested.pipeline.worker.resources is not None
    assert requested.pipeline.worker.resources.limits is not None
    assert requested.pipeline.worker.resources.limits.memory == "4Gi"
    assert requested.pipeline.worker.node_selector == WORKER["node_selector"]
    assert requested.pipeline.worker.tolerations is not None
    assert requested.pipeline.worker.tolerations[0].key == "dedicated"


async def test_patch_replaces_or_removes_the_worker_block(pipelines: Pipelines) -> None:
    client = pipelines.orchestrator
    created = await client.post("/v1/pipelines", json=body(pipelines, "worker-patch", worker=WORKER))
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    patched = await client.patch(f"/v1/pipelines/{pid}", json={"worker": {"node_selector": {"pool": "big"}}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["worker"]["node_selector"] == {"pool": "big"}
    assert patched.json()["worker"]["resources"] is None
    removed = await client.patch(f"/v1/pipelines/{pid}", json={"worker": None})
    assert removed.status_code == 200, removed.text
    assert removed.json()["worker"] is None
    assert (await client.get(f"/v1/pipelines/{pid}")).json()["worker"] is None


@pytest.mark.parametrize(("worker", "field"), [
    ({"resources": {"requests": {"cpu": "half"}}}, "worker.resources.requests.cpu"),
    ({"resources": {"limits": {"memory": "-1Gi"}}}, "worker.resources.limits.memory"),
    ({"resources": {"limits": {"memory": "1Gb"}}}, "worker.resources.limits.memory"),
    ({"resources": {"limits": {"memory": "1Gi\n"}}}, "worker.resources.limits.memory"),
    ({"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}, "worker.resources.requests.memory"),
    ({"resources": {"requests": {"cpu": "1", "gpu": "1"}}}, "worker.resources.requests.gpu"),
    ({"resources": {"request": {"cpu": "1"}}}, "worker.resources.request"),
    ({"node_selector": {"bad key!": "x"}}, "worker.node_selector.bad key!.[key]"),
    ({"node_selector": {"pool": "no spaces"}}, "worker.node_selector.pool"),
    ({"tolerations": [{"key": "a", "operator": "Exists", "value": "b"}]}, "worker.tolerations.0.value"),
    ({"tolerations": [{"key": "a", "operator": "Sometimes"}]}, "worker.tolerations.0.operator"),
    ({"tolerations": [{"key": "a", "effect": "NoSchedule", "toleration_seconds": 5}]},
     "worker.tolerations.0.toleration_seconds"),
    ({"tolerations": [{"value": "b"}]}, "worker.tolerations.0.key"),
    ({"service_account": "Not_A_Name"}, "worker.service_account"),
    ({"image": "evil:latest"}, "worker.image"),
])
async def test_a_bad_worker_block_is_a_422_naming_the_field(pipelines: Pipelines, worker: dict[str, Any],
                                                            field: str) -> None:
    client: httpx.AsyncClient = pipelines.orchestrator
    response = await client.post("/v1/pipelines", json=body(pipelines, "bad-worker", worker=worker))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]
