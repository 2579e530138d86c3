"""S3 source (and S3-compatible stores): pyarrow's S3 filesystem, built as the warehouse builds it."""

from tidemark.connectors.files.s3.source import S3Config, S3Source

__all__ = ["S3Config", "S3Source"]
