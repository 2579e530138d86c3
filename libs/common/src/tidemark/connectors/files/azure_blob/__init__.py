"""Azure Blob Storage source: pyarrow's Azure filesystem, built as the warehouse builds it."""

from tidemark.connectors.files.azure_blob.source import AzureBlobConfig, AzureBlobSource

__all__ = ["AzureBlobConfig", "AzureBlobSource"]
