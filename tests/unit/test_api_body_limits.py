"""Request bodies over the size limit, declared or chunked, and JSON nested too deep are 413 problem
responses before any route or JSON parser sees them; bodies within the limits are untouched."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from pydantic import SecretStr

from tidemark.api.app import build_app
from tidemark.api.limits import json_depth_exceeds
from tidemark.bus import MemoryBus
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_connector.app import DEFINITION
from tidemark_connector.settings import ConnectorSettings
from tidemark_testing.apps import running
from tidemark_testing.fake_vendors.server import serving

pytestmark = pytest.mark.unit
TOKEN = "unit-token"
LIMIT = 4096
DEPTH = 16


def connector_app(tmp_path: Path) -> FastAPI:
    settings = ConnectorSettings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/c.db"),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        platform=PlatformSettings(home=tmp_path / "home", internal_token=SecretStr("internal"),
                                  max_body_bytes=LIMIT, max_json_depth=DEPTH),
        bus="memory", secret_key=SecretStr(Fernet.generate_key().decode()),
    )
    return build_app([(DEFINITION, settings)], title="t", bus=MemoryBus(), migrate=True)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running(connector_app(tmp_path), TOKEN) as c:
        yield c


def nested(depth: int) -> str:
    return '{"name": "n", "type": "postgres", "config": {"x": ' + "[" * depth + "]" * depth + "}}"


def assert_413(response: httpx.Response, kind: str) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith(kind)
    assert problem["errors"][0]["field"] == "body"


async def test_a_body_over_the_limit_is_a_413(client: httpx.AsyncClient) -> None:
    body = {"name": "big", "type": "postgres", "config": {"host": "x" * LIMIT}}
    assert_413(await client.post("/v1/connections", json=body), "body-too-large")
    assert (await client.get("/v1/connections")).json() == []
    # Just within the limit, the same route answers as it always does (here: the config is invalid).
    small = {"name": "small", "type": "postgres", "config": {"host": "x" * (LIMIT - 200)}}
    assert (await client.post("/v1/connections", json=small)).status_code == 422


async def test_deep_json_is_refused_before_it_is_parsed(client: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/json"}
    assert_413(await client.post("/v1/connections", content=nested(DEPTH), headers=headers), "body-too-deep")
    # Brackets inside strings are text, not nesting.
    text = json.dumps({"name": "n", "type": "nope", "config": {"note": "[" * 200}})
    within = await client.post("/v1/connections", content=text, headers=headers)
    assert within.status_code == 422
    assert within.json()["errors"][0]["field"] == "type"


def test_the_depth_scan_counts_structure_only() -> None:
    assert json_depth_exceeds(b"[" * 65 + b"]" * 65, 64)
    assert not json_depth_exceeds(b"[" * 64 + b"]" * 64, 64)
    assert not json_depth_exceeds(json.dumps({"a": "[[[[" * 100, "b": [[1], [2]]}).encode(), 3)
    assert not json_depth_exceeds(b'["\\"[[[[[[["]', 2)
    # Huge and flat is a size question, not a depth one.
    assert not json_depth_exceeds(json.dumps([[i] for i in range(10_000)]).encode(), 2)


def test_a_chunked_body_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    with serving(connector_app(tmp_path)) as uri, httpx.Client(base_url=uri) as http:
        # Through httpx (no Content-Length: the body is chunked).
        response = http.post("/v1/connections", content=iter([b" " * 1024] * 64), headers={
            "Authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
        assert "content-length" not in response.request.headers
        assert_413(response, "body-too-large")
        # By hand: a chunked body that never ends is answered once it passes the limit, not waited for.
        url = httpx.URL(uri)
        with socket.create_connection((url.host, url.port), timeout=30) as sock:
            sock.sendall(f"POST /v1/connections HTTP/1.1\r\nHost: {url.host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                         "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            for _ in range(LIMIT // 1024 + 1):
                sock.sendall(b"400\r\n" + b" " * 1024 + b"\r\n")
            answer = sock.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 413"), answer
        assert "application/problem+json" in answer
