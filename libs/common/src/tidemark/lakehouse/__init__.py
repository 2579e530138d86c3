"""The lakehouse writer: every Iceberg and Parquet write in Tidemark goes through this package.

All functions block (pyiceberg and pyarrow I/O). Async services call them with
``asyncio.to_thread``; the worker process calls them directly.
"""

from tidemark.lakehouse.catalog import close_catalog, open_catalog
from tidemark.lakehouse.destination import Lakehouse, table_identifier
from tidemark.lakehouse.iceberg import read_state, write_stream
from tidemark.lakehouse.parquet import read_parquet_state, write_parquet_stream
from tidemark.lakehouse.request import WriteOptions, WriteRequest
from tidemark.lakehouse.settings import LakehouseSettings
from tidemark.lakehouse.state import WriteResult

__all__ = [
    "Lakehouse",
    "LakehouseSettings",
    "WriteOptions",
    "WriteRequest",
    "WriteResult",
    "close_catalog",
    "open_catalog",
    "read_parquet_state",
    "read_state",
    "table_identifier",
    "write_parquet_stream",
    "write_stream",
]
