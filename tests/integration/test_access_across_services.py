"""A token created on connector-svc is accepted by jobs-svc, a separate service with its own PostgreSQL
database, once the ``token.created`` event has crossed Kafka; after the revoke, jobs-svc refuses it within
seconds. jobs-svc runs as two replicas on one database and one consumer group: the replica that did not
consume an event learns it from the table its peer wrote (``auth.refresh_seconds``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.fixtures.infra import kafka_settings
from tidemark.api.app import build_app
from tidemark.settings import AuthSettings, DatabaseSettings, KafkaSettings, PlatformSettings
from tidemark_connector.app import DEFINITION as CONNECTOR
from tidemark_connector.settings import ConnectorSettings
from tidemark_jobs.app import DEFINITION as JOBS
from tidemark_jobs.settings import JobsSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.integration

ADMIN = "across-admin"
WAIT = 60.0


def _common(kafka: KafkaSettings, database_url: str) -> dict[str, Any]:
    return {"kafka": kafka, "database": DatabaseSettings(url=database_url), "outbox_poll_seconds": 0.2,
            "auth": AuthSettings(tokens=[SecretStr(f"ops:admin:{ADMIN}")], refresh_seconds=0.5)}


async def _until(what: str, check: Callable[[], Awaitable[bool]]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < WAIT:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} within {WAIT} s")


async def test_a_token_created_on_one_service_is_accepted_then_refused_by_another(
        kafka_bootstrap: str, topic_prefix: str, pg_database: Callable[[], str], tmp_path: Path) -> None:
    kafka = kafka_settings(kafka_bootstrap, topic_prefix)
    jobs_db = pg_database()
    connector = build_app([(CONNECTOR, ConnectorSettings(
        platform=PlatformSettings(home=tmp_path), **_common(kafka, pg_database())))],
        title="connector", migrate=True)
    replicas = [build_app([(JOBS, JobsSettings(**_common(kafka, jobs_db)))],
                          title=f"jobs-{n}", migrate=n == 0) for n in range(2)]
    async with contextlib.AsyncExitStack() as stack:
        admin = await stack.enter_async_context(running(connector, ADMIN))
        jobs: list[httpx.AsyncClient] = []
        for app in replicas:  # one after the other: the first migrates the shared database
            jobs.append(await stack.enter_async_context(running(app)))

        created = await admin.post("/v1/tokens", json={"name": "analyst", "scope": "read"})
        assert created.status_code == 201, created.text
        token, token_id = created.json()["token"], created.json()["id"]
        headers = {"Authorization": f"Bearer {token}"}
        assert (await admin.get("/v1/connections", headers=headers)).status_code == 200  # at once on its owner

        async def every_replica(status: int) -> bool:
            answers = [(await client.get("/v1/runs", headers=headers)).status_code for client in jobs]
            return all(a == status for a in answers)

        accepted_after = await _until("jobs-svc replicas accept the new token", lambda: every_replica(200))
        revoked = await admin.delete(f"/v1/tokens/{token_id}")
        assert revoked.status_code == 204
        assert (await admin.get("/v1/connections", headers=headers)).status_code == 401  # at once on its owner
        refused_after = await _until("jobs-svc replicas refuse the revoked token", lambda: every_replica(401))
        print(f"accepted after {accepted_after:.2f} s, refused after {refused_after:.2f} s")
        problem = (await jobs[0].get("/v1/runs", headers=headers))
        assert problem.headers["content-type"].startswith("application/problem+json")
        assert token not in problem.text
