"""What the local launcher's fork server imports once, so that every worker it forks starts with it
loaded (see :mod:`tidemark_ingest.launchers.forked`): the worker, the lakehouse writer with its
catalogs and file IO, and the connectors whose drivers are installed.

Importing, and filling caches (the connector registry, the TLS context, the ORM's mappers,
pydantic-settings' first use), is all it does: no thread,
socket or file is left open here, since a fork would copy them into every worker. (Importing pyarrow
starts jemalloc's background thread; jemalloc's fork handlers make that safe.)
"""

from __future__ import annotations

import contextlib
import gc
import importlib

from sqlalchemy.orm import configure_mappers

import tidemark_ingest.worker.main  # noqa: F401 - the worker, its settings, SQLAlchemy, pyarrow, pyiceberg
from tidemark.connectors.client import tls_context
from tidemark.connectors.registry import BUILTIN, connector_types
from tidemark_ingest.settings import WorkerSettings

# Imported by a run on its way (the catalog on first use, Parquet files, the readers' casts).
_ON_THE_WAY = (
    "pyiceberg.catalog.sql",
    "sqlalchemy.dialects.sqlite",  # the SQL catalog's engine loads its dialect on first use
    "pyiceberg.io.pyarrow",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "pyarrow.compute",
    "aiosqlite",
    "asyncpg",
    "httpx",
)

connector_types()  # the entry-point scan, cached
tls_context()  # reads the CA bundle once (a context holds no connection)
configure_mappers()  # the worker's ORM classes, configured once (its first query did it, 0.05 s)
with contextlib.suppress(Exception):
    # Thrown away (each worker reads its own environment): the first settings object of a process
    # fills pydantic-settings' and abc's caches, 0.1 s of a worker's start on the profile.
    WorkerSettings()
for _module in (*_ON_THE_WAY, *sorted({path.partition(":")[0] for path in BUILTIN.values()})):
    # A connector whose driver is not installed fails at its run, with the extra to install named.
    with contextlib.suppress(Exception):
        importlib.import_module(_module)

# Last: everything loaded so far moves to the collector's permanent generation, so a forked worker's
# collections never walk these objects, which would touch, and so copy, nearly every page it shares
# with the fork server (measured: a child's collections cost 0.4 s of CPU without this, 0.09 s with it;
# the standard library's advice for fork without exec).
gc.collect()
gc.freeze()
