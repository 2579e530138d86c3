"""File-source configs at connector-svc's API boundary: each problem named by its exact path, secrets
masked on the way out and never echoed in a 422 (nothing here reaches a store)."""

from __future__ import annotations

import httpx
import pytest

from tests.unit.test_connector_api import MASK, bus, client, start

pytestmark = pytest.mark.unit
__all__ = ["bus", "client", "start"]  # connector-svc on SQLite, shared with the connector API tests

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCY"


def s3_config(**over: object) -> dict[str, object]:
    return {"bucket": "acme-exports", "access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET,
            "streams": [{"name": "orders", "glob": "orders/*.csv", "format": "csv"}], **over}


async def test_a_bad_file_config_names_each_field(client: httpx.AsyncClient) -> None:
    bad = await client.post("/v1/connections", json={"name": "files", "type": "s3", "config": s3_config(
        bucket="Not_A_Bucket",
        streams=[{"name": "orders", "glob": "*.csv", "format": "xlsx"},
                 {"name": "events", "glob": "*.jsonl", "format": "jsonl", "csv": {"delimiter": ";;"}}],
        on_bad_file="ignore")})
    assert bad.status_code == 422
    assert sorted(e["field"] for e in bad.json()["errors"]) == [
        "config.bucket", "config.on_bad_file", "config.streams.0.format", "config.streams.1.csv.delimiter"]
    assert SECRET not in bad.text

    no_streams = await client.post("/v1/connections", json={"name": "f", "type": "s3",
                                                            "config": s3_config(streams=[])})
    assert [e["field"] for e in no_streams.json()["errors"]] == ["config.streams"]

    no_account = await client.post("/v1/connections", json={"name": "az", "type": "azure_blob", "config": {
        "container": "exports", "sas_token": SECRET, "streams": [{"name": "o", "glob": "*", "format": "parquet"}]}})
    assert no_account.status_code == 422
    assert "account_name is required" in no_account.text
    assert SECRET not in no_account.text


async def test_file_secrets_are_masked(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/connections", json={"name": "files", "type": "s3", "config": s3_config()})
    assert created.status_code == 201, created.text
    config = created.json()["config"]
    assert config["secret_access_key"] == MASK
    assert config["streams"][0]["csv"]["delimiter"] == ","  # defaults are filled in and shown
    assert SECRET not in created.text
