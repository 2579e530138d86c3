"""Helpers the file-source tests share: objects put into a moto bucket, and sources over it."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tests.fixtures.storage import S3_KEY_ID, S3_SECRET
from tidemark.connectors.files.s3 import S3Config, S3Source


def parquet_bytes(table: pa.Table, row_group_size: int | None = None) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size)
    return buf.getvalue()


class Bucket:
    """A moto bucket the test writes objects into."""

    def __init__(self, endpoint: str, name: str) -> None:
        import boto3

        self.endpoint, self.name = endpoint, name
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                   aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET)

    def put(self, key: str, body: bytes | str) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body.encode() if isinstance(body, str) else body)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.name, Key=key)

    def config(self, streams: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"bucket": self.name, "endpoint": self.endpoint, "access_key_id": S3_KEY_ID,
                "secret_access_key": S3_SECRET, "streams": streams, **extra}

    def source(self, streams: list[dict[str, Any]], **extra: Any) -> S3Source:
        return S3Source(S3Config.model_validate(self.config(streams, **extra)))
