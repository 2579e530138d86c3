"""REST and file sources refuse endpoints on loopback, private, link-local and metadata addresses
unless TIDEMARK_EGRESS_ALLOW permits them: at connection create (422 naming the field), at check,
and at run time when a URL changes later (a token's instance URL, a redirect, a rebinding DNS answer)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import SecretStr

from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.connectors.egress import EgressPolicy, EndpointRefusedError, GuardedTransport
from tidemark.connectors.files.azure_blob.source import AzureBlobConfig, AzureBlobSource
from tidemark.connectors.files.s3.source import S3Config, S3Source
from tidemark.connectors.rest.errors import Advice
from tidemark.connectors.rest.http import RestClient
from tidemark.connectors.rest.jira import JiraConfig, JiraSource
from tidemark.connectors.rest.salesforce import SalesforceConfig, SalesforceSource
from tidemark.errors import FailureKind, SourceError
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_connector.app import DEFINITION
from tidemark_connector.settings import ConnectorSettings
from tidemark_testing.apps import running
from tidemark_testing.fake_vendors.salesforce import STANDARD, FakeSalesforce
from tidemark_testing.fake_vendors.server import serving

pytestmark = pytest.mark.unit
TOKEN = "unit-token"
NONE = EgressPolicy()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/", "http://localhost./", "http://[::1]/", "http://10.1.2.3/", "http://192.168.0.9/",
    "http://172.16.5.5/", "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
    "http://100.100.100.200/", "http://100.64.0.1/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/",
    "http://metadata.google.internal/computeMetadata/v1/", "http://[fe80::1%25eth0]/", "http://224.0.0.1/",
])
def test_internal_and_metadata_endpoints_are_refused(url: str) -> None:
    with pytest.raises(EndpointRefusedError) as refused:
        NONE.check_url(url, "base_url", resolver=lambda host, port: ["127.0.0.1"])
    assert refused.value.kind is FailureKind.CONFIG
    assert refused.value.detail["field"] == "base_url"
    assert "TIDEMARK_EGRESS_ALLOW" in refused.value.message


def test_a_public_address_passes_and_every_resolved_address_counts() -> None:
    assert NONE.check_url("https://93.184.216.34/x", "base_url") == ["93.184.216.34"]
    assert NONE.check_url("https://api.vendor.test", "base_url",
                          resolver=lambda host, port: ["93.184.216.34"]) == ["93.184.216.34"]
    # A name answering a public and a private address could send the request to either.
    private = re.escape("api.vendor.test (resolves to 10.0.0.7) is a private-network")
    with pytest.raises(EndpointRefusedError, match=private):
        NONE.check_url("https://api.vendor.test", "base_url", resolver=lambda host, port: ["93.184.216.34", "10.0.0.7"])


def test_the_allow_list_takes_networks_and_host_names() -> None:
    policy = EgressPolicy.parse("10.1.0.0/16, 127.0.0.1 ,minio.internal")
    assert policy.check_url("http://10.1.200.3:9000", "endpoint") == ["10.1.200.3"]
    assert policy.check_url("http://127.0.0.1:9000", "endpoint") == ["127.0.0.1"]
    assert policy.check_url("http://MINIO.internal:9000", "endpoint",
                            resolver=lambda host, port: ["10.9.9.9"]) == ["10.9.9.9"]
    with pytest.raises(EndpointRefusedError):
        policy.check_url("http://10.2.0.1", "endpoint")
    with pytest.raises(EndpointRefusedError):
        policy.check_url("http://127.0.0.2", "endpoint")


@pytest.fixture
def echo() -> Iterator[str]:
    app = FastAPI()

    @app.get("/echo")
    def _echo_host(request: Request) -> JSONResponse:
        return JSONResponse({"host": request.headers["host"], "path": request.url.path})

    with serving(app) as uri:
        yield uri


def test_the_transport_connects_to_the_address_it_checked(echo: str) -> None:
    port = httpx.URL(echo).port
    answers: list[list[str]] = [["127.0.0.1"], ["10.0.0.1"]]  # a rebinding DNS: the second answer is private

    def rebinding(host: str, port: int) -> list[str]:
        return answers.pop(0)

    transport = GuardedTransport(EgressPolicy.parse("127.0.0.1/32"), field="base_url", resolver=rebinding)
    with httpx.Client(transport=transport) as client:
        # `api.vendor.test` resolves nowhere but through the checked answer: the request went there,
        # and the server saw the name it was asked for.
        first = client.get(f"http://api.vendor.test:{port}/echo")
        assert first.json() == {"host": f"api.vendor.test:{port}", "path": "/echo"}
        with pytest.raises(EndpointRefusedError, match=re.escape("10.0.0.1")):
            client.get(f"http://api.vendor.test:{port}/echo")


def test_a_redirect_to_a_refused_address_is_refused(echo: str) -> None:
    port = httpx.URL(echo).port
    app = FastAPI()

    @app.get("/go")
    def _go() -> RedirectResponse:
        return RedirectResponse(f"http://127.0.0.1:{port}/echo")

    with serving(app) as uri:
        start = httpx.URL(uri).copy_with(host="localhost", path="/go")
        transport = GuardedTransport(EgressPolicy.parse("localhost"), field="base_url")
        with httpx.Client(transport=transport, follow_redirects=True) as client, \
                pytest.raises(EndpointRefusedError, match=re.escape("127.0.0.1 is a loopback address")):
            client.get(start)
        # Allowed, the same redirect is followed.
        allowed = GuardedTransport(EgressPolicy.parse("localhost,127.0.0.1"), field="base_url")
        with httpx.Client(transport=allowed, follow_redirects=True) as client:
            assert client.get(start).json()["path"] == "/echo"


def test_a_rest_source_check_names_the_url_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK_EGRESS_ALLOW", "")
    config = JiraConfig(base_url="http://169.254.169.254", email="a@b.c", api_token=SecretStr("ATATT-unit-token"))
    source = JiraSource(config)
    try:
        with pytest.raises(SourceError) as refused:
            source.check()
    finally:
        source.close()
    assert (refused.value.kind, refused.value.detail["field"]) == (FailureKind.CONFIG, "base_url")
    assert "cloud metadata address" in refused.value.message


def test_an_instance_url_that_moves_to_a_refused_address_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # The login URL is allowed (by name); the token answer sends the API to 127.0.0.1, which is not.
    monkeypatch.setenv("TIDEMARK_EGRESS_ALLOW", "localhost")
    fake = FakeSalesforce("3MVG9-client", "sf-SECRET", "5Aep-REFRESH")
    fake.objects = {"Account": list(STANDARD)}
    with serving(fake.app) as uri:
        fake.uri = uri
        login = str(httpx.URL(uri).copy_with(host="localhost"))
        source = SalesforceSource(SalesforceConfig(login_url=login, client_id="3MVG9-client",
                                                   client_secret=SecretStr("sf-SECRET"),
                                                   refresh_token=SecretStr("5Aep-REFRESH"), objects=["Account"]))
        try:
            with pytest.raises(SourceError) as refused:
                source.discover()
        finally:
            source.close()
    assert (refused.value.kind, refused.value.detail["field"]) == (FailureKind.CONFIG, "login_url")
    assert "127.0.0.1 is a loopback address" in refused.value.message


def test_file_stores_check_their_endpoint_before_the_first_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK_EGRESS_ALLOW", "")
    stream = {"name": "s", "glob": "*.csv", "format": "csv"}
    s3 = S3Source(S3Config(bucket="data", endpoint="http://10.0.0.5:9000", streams=[stream]))
    with pytest.raises(SourceError) as refused:
        s3.check()
    assert refused.value.detail["field"] == "endpoint"
    azure = AzureBlobSource(AzureBlobConfig(
        container="data", streams=[stream],
        connection_string=SecretStr("AccountName=a;AccountKey=a2V5;BlobEndpoint=http://169.254.169.254/a")))
    with pytest.raises(SourceError) as refused:
        azure.check()
    assert refused.value.detail["field"] == "connection_string"
    assert "a2V5" not in refused.value.message


@pytest.fixture
async def connector_api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = ConnectorSettings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/c.db"),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        platform=PlatformSettings(home=tmp_path / "home", internal_token=SecretStr("internal"),
                                  egress_allow="10.20.0.0/16"),
        bus="memory", secret_key=SecretStr(Fernet.generate_key().decode()),
    )
    app = build_app([(DEFINITION, settings)], title="t", bus=MemoryBus(), migrate=True)
    async with running(app, TOKEN) as c:
        yield c


async def test_creating_or_changing_a_connection_to_a_refused_endpoint_is_a_422(
    connector_api: httpx.AsyncClient,
) -> None:
    body = {"name": "jira", "type": "jira",
            "config": {"base_url": "http://169.254.169.254", "email": "bot@example.com", "api_token": "t"}}
    refused = await connector_api.post("/v1/connections", json=body)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    [error] = refused.json()["errors"]
    assert (error["field"], error["type"]) == ("config.base_url", "endpoint_refused")
    assert (await connector_api.get("/v1/connections")).json() == []
    # The service's own allow-list lets an internal network through; changing it to another is refused.
    body["config"]["base_url"] = "http://10.20.1.1:8080"
    created = await connector_api.post("/v1/connections", json=body)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    moved = await connector_api.patch(f"/v1/connections/{cid}", json={"config": {"base_url": "http://10.30.1.1"}})
    assert moved.status_code == 422
    assert moved.json()["errors"][0]["field"] == "config.base_url"
    s3 = {"name": "files", "type": "s3", "config": {"bucket": "data", "endpoint": "http://[::1]:9000",
                                                      "streams": [{"name": "s", "glob": "*.csv", "format": "csv"}]}}
    refused = await connector_api.post("/v1/connections", json=s3)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "config.endpoint"


def test_a_request_through_an_environment_proxy_is_checked_too(
    monkeypatch: pytest.MonkeyPatch, echo: str
) -> None:
    # The echo server plays the proxy: a proxied request is sent to it with the full URL as its path.
    monkeypatch.setenv("TIDEMARK_EGRESS_ALLOW", "")
    monkeypatch.setenv("HTTP_PROXY", echo)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = RestClient("http://169.254.169.254", advice=Advice("Test", "", "token", ""), url_field="base_url",
                        max_attempts=1)
    try:
        with pytest.raises(SourceError) as refused:
            client.request("GET", "/latest/meta-data/", what="read metadata")
    finally:
        client.close()
    assert (refused.value.kind, refused.value.detail["field"]) == (FailureKind.CONFIG, "base_url")
    # An allowed host goes through the proxy as before.
    allowed = GuardedTransport(EgressPolicy.parse("93.184.216.34"), field="base_url", proxies={"http": echo})
    with httpx.Client(transport=allowed) as proxied:
        answer = proxied.get("http://93.184.216.34/echo")
    # The echo server on loopback got the request for the public host: it went through the proxy.
    assert answer.json() == {"host": "93.184.216.34", "path": "/echo"}
