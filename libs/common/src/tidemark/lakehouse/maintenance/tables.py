"""Loading a table for maintenance, and the catalog errors maintenance translates."""

from __future__ import annotations

import contextlib

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.table import Table

from tidemark.errors import NotFoundError
from tidemark.lakehouse.iceberg import catalog_errors


def load(catalog: Catalog, identifier: str) -> Table:
    with translated(identifier):
        try:
            return catalog.load_table(identifier)
        except (NoSuchTableError, NoSuchNamespaceError) as exc:
            raise NotFoundError(f"table {identifier} does not exist") from exc


def translated(identifier: str) -> contextlib.AbstractContextManager[None]:
    """Catalog and storage failures as Tidemark errors. A commit conflict (CommitFailedException,
    ValidationException) passes through: each maintenance action decides what a conflict means."""
    return catalog_errors(identifier, warehouse="cannot reach the warehouse")
