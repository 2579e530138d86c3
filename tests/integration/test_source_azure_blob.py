"""The Azure Blob file source against Azurite: the contract, each way to authenticate (account key,
SAS token, connection string), formats under nested prefixes, and incremental reads with the ledger."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pytest
from pyarrow import fs as pafs

from tests.fixtures.storage import AZURITE_ACCOUNT, azure_settings
from tests.integration.files_fixtures import parquet_bytes
from tidemark.connectors import get_connector
from tidemark.connectors.files.azure_blob import AzureBlobConfig, AzureBlobSource
from tidemark.errors import FailureKind, SourceError
from tidemark.events import DestinationSpec, StreamSpec, SyncMode
from tidemark.lakehouse import Lakehouse
from tidemark.lakehouse.settings import AZURITE_ACCOUNT_KEY
from tidemark.lakehouse.storage import TidemarkFileIO
from tidemark_ingest.worker.load import Progress, load_stream
from tidemark_testing.connector_contract import CONTRACT_ROWS, ContractTable, SourceContract, rows_of

pytestmark = pytest.mark.integration


def account_sas(permissions: str, hours: int = 2) -> str:
    """An account SAS for Azurite's development account, signed as Azure documents it
    (https://learn.microsoft.com/rest/api/storageservices/create-account-sas, version 2019-12-12)."""
    expiry = (datetime.now(UTC) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {"sv": "2019-12-12", "ss": "b", "srt": "sco", "sp": permissions, "se": expiry, "spr": "https,http"}
    to_sign = "\n".join([AZURITE_ACCOUNT, fields["sp"], fields["ss"], fields["srt"], "", fields["se"], "",
                         fields["spr"], fields["sv"], ""])
    digest = hmac.new(base64.b64decode(AZURITE_ACCOUNT_KEY), to_sign.encode(), hashlib.sha256).digest()
    fields["sig"] = base64.b64encode(digest).decode()
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in fields.items())


class Container:
    """A fresh Azurite container the test writes blobs into."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.name = f"tm{uuid.uuid4().hex[:16]}"
        props = azure_settings(endpoint).properties("")
        self.fs: pafs.FileSystem = TidemarkFileIO(props).fs_by_scheme("abfs", None)
        self.fs.create_dir(self.name)

    def put(self, key: str, body: bytes | str) -> None:
        with self.fs.open_output_stream(f"{self.name}/{key}", compression=None) as f:
            f.write(body.encode() if isinstance(body, str) else body)

    def source(self, streams: list[dict[str, Any]], **extra: Any) -> AzureBlobSource:
        auth = extra.pop("auth", {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_ACCOUNT_KEY,
                                  "blob_endpoint": self.endpoint})
        return AzureBlobSource(AzureBlobConfig.model_validate(
            {"container": self.name, "streams": streams, **auth, **extra}))


@pytest.fixture
def container(azurite_endpoint: str) -> Container:
    return Container(azurite_endpoint)


CSV = {"name": "orders", "glob": "orders/**/*.csv*", "format": "csv"}


class TestAzureBlobContract(SourceContract):
    @pytest.fixture
    def contract_table(self, container: Container) -> ContractTable:
        schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.decimal128(10, 2)),
                            ("updated_at", pa.timestamp("us"))])
        container.put("in/contract/all.parquet", parquet_bytes(pa.Table.from_pylist(CONTRACT_ROWS, schema)))
        source = container.source([{"name": "contract", "glob": "contract/*.parquet", "format": "parquet",
                                    "primary_key": ["id"]}], prefix="in", file_columns=False)
        return ContractTable(source=source, stream="contract")


def test_registered_with_its_secrets() -> None:
    assert get_connector("azure_blob") is AzureBlobSource
    assert set(AzureBlobSource.config_model.secret_fields()) == {"account_key", "sas_token", "connection_string"}


@pytest.mark.parametrize("auth", ["account_key", "sas_token", "connection_string"])
def test_each_credential_reads_nested_prefixes(container: Container, auth: str) -> None:
    container.put("data/orders/2024/01/a.csv", "id,amount\n1,10\n")
    container.put("data/orders/2024/02/b.csv.gz", gzip.compress(b"id,amount\n2,10.5\n"))
    container.put("data/orders/skip.json", "{}")
    credentials: dict[str, dict[str, str]] = {
        "account_key": {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_ACCOUNT_KEY,
                        "blob_endpoint": container.endpoint},
        "sas_token": {"account_name": AZURITE_ACCOUNT, "sas_token": account_sas("rl"),
                      "blob_endpoint": container.endpoint},
        "connection_string": {"connection_string": f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                                                   f"AccountKey={AZURITE_ACCOUNT_KEY};BlobEndpoint={container.endpoint};"},
    }
    source = container.source([CSV], prefix="data", auth=credentials[auth])
    source.check()
    assert source.arrow_schema(StreamSpec(name="orders")).field("amount").type == pa.float64()
    got = sorted(rows_of(source.read(StreamSpec(name="orders"), None)), key=lambda r: r["id"])
    assert [(r["id"], r["amount"], r["_file"]) for r in got] == [
        (1, 10.0, "data/orders/2024/01/a.csv"), (2, 10.5, "data/orders/2024/02/b.csv.gz")]


def test_wrong_credentials_and_missing_container_are_config_errors(container: Container, lake: Lakehouse) -> None:
    wrong = container.source([CSV], auth={"account_name": AZURITE_ACCOUNT, "blob_endpoint": container.endpoint,
                                          "account_key": base64.b64encode(b"not the key").decode()})
    with pytest.raises(SourceError) as caught:
        wrong.check()
    assert caught.value.kind is FailureKind.CONFIG
    assert "refused the credentials" in caught.value.message
    assert "not the key" not in caught.value.message
    missing = container.source([CSV], container="no-such-container")
    with pytest.raises(SourceError, match="does not exist") as caught:
        missing.check()
    assert caught.value.kind is FailureKind.CONFIG
    stats = load_stream(lake, missing, DestinationSpec(namespace="gone"), StreamSpec(name="orders"), "run-1",
                        Progress())
    assert stats.status == "failed"  # not "succeeded with 0 rows": the store lists a missing container as empty
    assert stats.error is not None
    assert "does not exist" in stats.error.message


def test_incremental_append_reads_each_blob_once(container: Container, lake: Lakehouse) -> None:
    spec = StreamSpec(name="orders", sync_mode=SyncMode.INCREMENTAL_APPEND, cursor_field="_file_modified_at")

    def run(run_id: str) -> int:
        stats = load_stream(lake, container.source([CSV]), DestinationSpec(namespace="az"), spec, run_id, Progress())
        assert stats.status == "succeeded", stats.error
        return stats.rows_written

    container.put("orders/a.csv", "id\n1\n")
    assert run("r1") == 1
    container.put("orders/b.csv", "id\n2\n")
    assert run("r2") == 1
    time.sleep(1.1)
    container.put("orders/a.csv", "id\n1\n")  # unchanged content, new time
    container.put("orders/b.csv", "id\n20\n")  # new content
    assert run("r3") == 1
    assert run("r4") == 0
    ids = lake.catalog.load_table("az.orders").scan().to_arrow().column("id").to_pylist()
    assert sorted(ids) == [1, 2, 20]


def test_a_sas_token_also_opens_an_azure_warehouse(container: Container) -> None:
    """The warehouse and the source share the storage layer; a SAS token with or without its `?` works in both."""
    from pydantic import SecretStr

    from tidemark.lakehouse.settings import AzureSettings, LakehouseSettings
    from tidemark.lakehouse.storage import list_files, warehouse_filesystem

    container.put("lake/marker.txt", "x")
    for token in (account_sas("rl"), "?" + account_sas("rl")):
        settings = LakehouseSettings(
            warehouse=f"abfs://{container.name}@{AZURITE_ACCOUNT}.dfs.core.windows.net/lake",
            azure=AzureSettings(account_name=AZURITE_ACCOUNT, sas_token=SecretStr(token),
                                blob_endpoint=container.endpoint))
        fs, root = warehouse_filesystem(settings)
        assert [f.path for f in list_files(fs, root)] == [f"{container.name}/lake/marker.txt"]
