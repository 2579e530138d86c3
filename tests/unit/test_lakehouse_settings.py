from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from tidemark.lakehouse import LakehouseSettings
from tidemark.lakehouse.settings import AZURITE_ACCOUNT_KEY, AzureSettings, S3Settings
from tidemark.lakehouse.storage import TidemarkFileIO
from tidemark_ingest.settings import IngestSettings

pytestmark = pytest.mark.unit

SECRET = "do-not-leak-0123456789"


def s3_settings(**s3: object) -> LakehouseSettings:
    return LakehouseSettings(
        catalog_uri="sqlite:////tmp/cat.db", warehouse="s3://bucket/lake",
        s3=S3Settings.model_validate({"endpoint": "http://127.0.0.1:9000", "access_key_id": "AKIA",
                                      "secret_access_key": SECRET, **s3}),
    )


def test_s3_fields_become_pyiceberg_properties() -> None:
    props = s3_settings().catalog_properties()
    assert props["s3.endpoint"] == "http://127.0.0.1:9000"
    assert props["s3.access-key-id"] == "AKIA"
    assert props["s3.secret-access-key"] == SECRET
    assert props["s3.region"] == "us-east-1"
    assert "s3.force-virtual-addressing" not in props
    assert props["py-io-impl"] == "tidemark.lakehouse.storage.TidemarkFileIO"
    assert s3_settings(path_style=False).catalog_properties()["s3.force-virtual-addressing"] == "true"
    # Explicit properties win: an escape hatch for options without a field.
    custom = s3_settings().model_copy(update={"properties": {"s3.region": "eu-west-1"}})
    assert custom.catalog_properties()["s3.region"] == "eu-west-1"


def test_azure_connection_string_fills_account_key_and_endpoint() -> None:
    conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={SECRET};"
            "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")
    settings = LakehouseSettings(catalog_uri="sqlite:////tmp/c.db",
                                 warehouse="abfs://lake@devstoreaccount1.dfs.core.windows.net/prefix",
                                 azure=AzureSettings(connection_string=SecretStr(conn)))
    props = settings.catalog_properties()
    assert props["adls.account-name"] == "devstoreaccount1"
    assert props["adls.account-key"] == SECRET
    assert props["adls.blob-storage-authority"] == "127.0.0.1:10000"
    assert props["adls.blob-storage-scheme"] == "http"
    dev = AzureSettings(connection_string=SecretStr("UseDevelopmentStorage=true")).properties("abfs://c/p")
    assert dev["adls.account-key"] == AZURITE_ACCOUNT_KEY


def test_azure_account_comes_from_the_warehouse_uri() -> None:
    settings = LakehouseSettings(catalog_uri="sqlite:////tmp/c.db",
                                 warehouse="abfss://lake@prodaccount.dfs.core.windows.net/raw",
                                 azure=AzureSettings(account_key=SecretStr(SECRET)))
    props = settings.catalog_properties()
    assert props["adls.account-name"] == "prodaccount"
    assert "adls.blob-storage-authority" not in props  # Azure's own endpoints


def test_canonical_abfs_locations_map_to_container_paths() -> None:
    location = "abfss://lake@acct.dfs.core.windows.net/raw/orders/data/x.parquet"
    assert TidemarkFileIO.parse_location(location)[2] == "lake/raw/orders/data/x.parquet"
    assert TidemarkFileIO.parse_location("abfs://lake/raw/x")[2] == "lake/raw/x"
    assert TidemarkFileIO.parse_location("s3://bucket/a/b")[2] == "bucket/a/b"


def test_rest_catalog_properties() -> None:
    settings = LakehouseSettings(catalog_type="rest", catalog_uri="https://catalog.example.com/api/",
                                 warehouse="s3://bucket/lake", catalog_warehouse="analytics",
                                 catalog_credential=SecretStr(f"client:{SECRET}"),
                                 catalog_token=SecretStr(SECRET))
    props = settings.catalog_properties()
    assert props["uri"] == "https://catalog.example.com/api/"
    assert props["warehouse"] == "analytics"
    assert props["credential"] == f"client:{SECRET}"
    assert props["token"] == SECRET
    assert props["oauth2-server-uri"] == "https://catalog.example.com/api/v1/oauth/tokens"


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="warehouse: use one of"):
        LakehouseSettings(warehouse="gopher://x/y")
    with pytest.raises(ValidationError, match="http"):
        LakehouseSettings(catalog_type="rest", catalog_uri="sqlite:///x.db")
    with pytest.raises(ValidationError, match="synchronous driver"):
        LakehouseSettings(catalog_uri="postgresql+asyncpg://u@h/db")


def test_secrets_never_show(caplog: pytest.LogCaptureFixture) -> None:
    settings = LakehouseSettings(
        catalog_type="rest", catalog_uri="http://127.0.0.1:1", warehouse="s3://b/p",
        catalog_credential=SecretStr(f"id:{SECRET}"), catalog_token=SecretStr(SECRET),
        s3=S3Settings(secret_access_key=SecretStr(SECRET), session_token=SecretStr(SECRET)),
        azure=AzureSettings(account_key=SecretStr(SECRET), connection_string=SecretStr(f"AccountKey={SECRET}")),
        properties={"s3.secret-access-key": SECRET},
    )
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("settings %s", settings)
    for text in (repr(settings), str(settings), settings.model_dump_json(), caplog.text):
        assert SECRET not in text


def test_environment_rebuilds_every_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = LakehouseSettings(
        catalog_type="rest", catalog_uri="http://127.0.0.1:8181", warehouse="abfs://c@acct.dfs.core.windows.net/w",
        catalog_warehouse="wh", catalog_token=SecretStr(SECRET),
        s3=S3Settings(endpoint="http://127.0.0.1:9000", secret_access_key=SecretStr(SECRET), path_style=False),
        azure=AzureSettings(account_key=SecretStr(SECRET), blob_endpoint="http://127.0.0.1:10000/acct"),
        properties={"s3.connect-timeout": "5"},
    )
    for key, value in lake.environment("TIDEMARK_INGEST__LAKEHOUSE__").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TIDEMARK_HOME", str(tmp_path))
    assert IngestSettings().lakehouse == lake
