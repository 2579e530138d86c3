"""File sources through the platform: `tidemark up` as a process, the CLI and the API against it, files
in moto's S3 and in Azurite. connection → check → discover → pipeline → run → Iceberg table equal to the files' rows;
a second run appends only the file added in between."""

from __future__ import annotations

import gzip
import json

import httpx
import pyarrow as pa
import pytest

from tests.e2e.test_embedded_and_cli import Embedded, embedded, ok
from tests.fixtures.storage import AZURITE_ACCOUNT
from tests.integration.files_fixtures import Bucket, parquet_bytes
from tests.integration.test_source_azure_blob import Container
from tidemark.lakehouse import Lakehouse, LakehouseSettings
from tidemark.lakehouse.settings import AZURITE_ACCOUNT_KEY

pytestmark = pytest.mark.e2e
__all__ = ["embedded"]  # the platform fixture, shared with the CLI tests' module


def test_connector_types_list_file_sources_with_write_only_secrets(embedded: Embedded) -> None:
    assert {"s3", "azure_blob"} <= set(ok(embedded.cli("connections", "types")).output.split())
    types = httpx.get(f"{embedded.process.url}/v1/connector-types",
                      headers={"Authorization": f"Bearer {embedded.token}"}, timeout=30).json()
    by_type = {t["type"]: t for t in types}
    for name, secrets in (("s3", ["secret_access_key", "session_token"]),
                          ("azure_blob", ["account_key", "sas_token", "connection_string"])):
        schema = by_type[name]["config_schema"]
        assert by_type[name]["secret_fields"] == secrets
        for field in secrets:
            variants = schema["properties"][field].get("anyOf", [schema["properties"][field]])
            assert any(v.get("writeOnly") for v in variants), (name, field, schema["properties"][field])
        assert "streams" in schema["required"]


def test_s3_files_land_in_iceberg_and_only_new_files_are_appended(
        embedded: Embedded, moto_endpoint: str, s3_bucket: str) -> None:
    bucket = Bucket(moto_endpoint, s3_bucket)
    bucket.put("exports/orders/2024/01/a.csv", "id,amount,status\n1,10.5,new\n2,3,paid\n")
    bucket.put("exports/orders/2024/02/b.csv.gz", gzip.compress(b"id,amount,status\n3,7.25,new\n"))
    bucket.put("exports/orders/notes.txt", "not part of the stream")
    config = bucket.config([{"name": "orders", "glob": "orders/**/*.csv*", "format": "csv", "primary_key": ["id"]}],
                           prefix="exports")
    ok(embedded.cli("connections", "create", "--name", "s3-orders", "--type", "s3", "--config", json.dumps(config)))
    shown = json.loads(ok(embedded.cli("--json", "connections", "show", "s3-orders")).output)
    assert config["secret_access_key"] not in json.dumps(shown)
    assert "succeeded" in ok(embedded.cli("connections", "check", "s3-orders")).output
    catalog = json.loads(ok(embedded.cli("--json", "connections", "discover", "s3-orders")).output)
    [orders] = catalog["streams"]
    assert [(c["name"], c["type"]) for c in orders["columns"]] == [
        ("id", "int64"), ("amount", "double"), ("status", "string"), ("_file", "string"),
        ("_file_modified_at", "timestamp[us, tz=UTC]")]

    ok(embedded.cli("pipelines", "create", "--name", "s3-orders", "--connection", "s3-orders", "--stream", "orders",
                    "--mode", "incremental_append", "--cursor-field", "_file_modified_at", "--namespace", "files"))
    first = json.loads(ok(embedded.cli("--json", "pipelines", "run", "s3-orders", "--wait")).output)
    assert (first["status"], first["rows_written"]) == ("succeeded", 3), first

    lake = Lakehouse(LakehouseSettings().resolve(embedded.home))
    try:
        def table_rows() -> list[tuple[int, float, str, str]]:
            table = lake.catalog.load_table(first["streams"][0]["table"])
            return sorted((r["id"], r["amount"], r["status"], r["_file"]) for r in table.scan().to_arrow().to_pylist())

        assert table_rows() == [(1, 10.5, "new", "exports/orders/2024/01/a.csv"),
                                (2, 3.0, "paid", "exports/orders/2024/01/a.csv"),
                                (3, 7.25, "new", "exports/orders/2024/02/b.csv.gz")]

        bucket.put("exports/orders/2024/03/c.csv", "id,amount,status\n4,1,new\n")
        second = json.loads(ok(embedded.cli("--json", "pipelines", "run", "s3-orders", "--wait")).output)
        assert (second["status"], second["rows_written"]) == ("succeeded", 1), second
        assert [r[0] for r in table_rows()] == [1, 2, 3, 4]
        third = json.loads(ok(embedded.cli("--json", "pipelines", "run", "s3-orders", "--wait")).output)
        assert (third["status"], third["rows_written"]) == ("succeeded", 0), third
        assert [r[0] for r in table_rows()] == [1, 2, 3, 4]
    finally:
        lake.close()


def test_azure_blob_files_land_in_iceberg(embedded: Embedded, azurite_endpoint: str) -> None:
    container = Container(azurite_endpoint)
    container.put("daily/customers/2024/part-0.parquet", parquet_bytes(pa.table(
        {"id": pa.array([1, 2], pa.int32()), "name": ["Ada", "Zoë"]})))
    container.put("daily/customers/2025/part-0.parquet", parquet_bytes(pa.table(
        {"id": pa.array([3], pa.int64()), "name": ["東京"], "tier": ["gold"]})))
    config = {"container": container.name, "prefix": "daily",
              "connection_string": f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                                   f"AccountKey={AZURITE_ACCOUNT_KEY};BlobEndpoint={azurite_endpoint};",
              "streams": [{"name": "customers", "glob": "customers/**/*.parquet", "format": "parquet"}]}
    ok(embedded.cli("connections", "create", "--name", "az-customers", "--type", "azure_blob",
                    "--config", json.dumps(config)))
    shown = ok(embedded.cli("--json", "connections", "show", "az-customers")).output
    assert AZURITE_ACCOUNT_KEY not in shown
    assert "succeeded" in ok(embedded.cli("connections", "check", "az-customers")).output
    [customers] = json.loads(ok(embedded.cli("--json", "connections", "discover", "az-customers")).output)["streams"]
    assert [(c["name"], c["type"]) for c in customers["columns"]][:3] == [
        ("id", "int64"), ("name", "string"), ("tier", "string")]
    ok(embedded.cli("pipelines", "create", "--name", "az-customers", "--connection", "az-customers",
                    "--stream", "customers", "--namespace", "azfiles"))
    run = json.loads(ok(embedded.cli("--json", "pipelines", "run", "az-customers", "--wait")).output)
    assert (run["status"], run["rows_written"]) == ("succeeded", 3), run
    lake = Lakehouse(LakehouseSettings().resolve(embedded.home))
    try:
        table = lake.catalog.load_table(run["streams"][0]["table"]).scan().to_arrow()
        assert sorted((r["id"], r["name"], r["tier"]) for r in table.to_pylist()) == [
            (1, "Ada", None), (2, "Zoë", None), (3, "東京", "gold")]
    finally:
        lake.close()
