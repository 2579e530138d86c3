"""The demo pipeline: bundled sample shop database → Iceberg, through every service."""

from __future__ import annotations

import time
from typing import Any

from tidemark_cli.client import ApiError, Client

CONNECTION = "demo-shop"
PIPELINE = "demo-shop"
STREAMS = ["main.customers", "main.orders"]


def ensure(client: Client, collection: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        return client.resolve(collection, name)
    except ApiError as exc:
        if exc.status != 404:
            raise
    return dict(client.post(f"/v1/{collection}", json=body))


def wait_ready(client: Client, timeout: float = 60, poll_seconds: float = 0.2) -> None:
    """Return as soon as ``/readyz`` answers 200: every service has its database and the broker."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.get("/readyz")
            return
        except ApiError:
            if time.monotonic() > deadline:
                raise
            time.sleep(poll_seconds)


def wait_for_run(client: Client, run_id: str, timeout: float = 180, poll_seconds: float = 0.25) -> dict[str, Any]:
    """Poll jobs-svc until the run is terminal (it learns of the run through Kafka)."""
    deadline = time.monotonic() + timeout
    terminal = {"succeeded", "partially_succeeded", "failed", "cancelled"}
    while time.monotonic() < deadline:
        try:
            run = dict(client.get(f"/v1/runs/{run_id}"))
            if run["status"] in terminal:
                return run
        except ApiError as exc:
            if exc.status != 404:
                raise
        time.sleep(poll_seconds)
    raise TimeoutError(f"run {run_id} did not finish within {timeout:.0f}s")


def run_demo(client: Client) -> dict[str, Any]:
    connection = ensure(client, "connections", CONNECTION,
                        {"name": CONNECTION, "type": "sqlite", "config": {"path": "sample:shop"}})
    pipeline = ensure(client, "pipelines", PIPELINE, {
        "name": PIPELINE,
        "connection_id": connection["id"],
        "streams": [{"name": s, "sync_mode": "full_refresh"} for s in STREAMS],
        "destination": {"kind": "iceberg", "namespace": "demo"},
    })
    run = client.post(f"/v1/pipelines/{pipeline['id']}/runs")
    return wait_for_run(client, run["run_id"])
