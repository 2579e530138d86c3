"""Schema on write: add new columns, apply safe widenings, refuse incompatible changes by name."""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.exceptions import ResolveError, ValidationError
from pyiceberg.io.pyarrow import UnsupportedPyArrowTypeException, _pyarrow_to_schema_without_ids
from pyiceberg.schema import Schema, promote
from pyiceberg.table import Transaction
from pyiceberg.types import IcebergType

from tidemark.errors import ConfigError


def iceberg_schema(schema: pa.Schema, identifier: str) -> Schema:
    try:
        return _pyarrow_to_schema_without_ids(schema)
    except UnsupportedPyArrowTypeException as exc:
        raise ConfigError(
            f"table {identifier}: column {exc.field.name!r} has Arrow type {exc.field.type}, "
            "which Iceberg cannot store",
            column=exc.field.name,
        ) from exc


def _widens(narrow: IcebergType, wide: IcebergType) -> bool:
    try:
        promote(narrow, wide)
    except ResolveError:
        return False
    return True


def check_compatible(table_schema: Schema, incoming: Schema, identifier: str) -> None:
    """Raise ConfigError naming the first column whose type changed beyond a safe widening.

    Narrowing (the table has ``long``, the source now says ``int``) is fine: the
    table keeps the wider type and values are widened on write.
    """
    table_struct = table_schema.as_struct()
    for field in incoming.fields:
        existing = table_struct.field_by_name(field.name)
        if existing is None or existing.field_type == field.field_type:
            continue
        old, new = existing.field_type, field.field_type
        if old.is_primitive and new.is_primitive and (_widens(new, old) or _widens(old, new)):
            continue
        if not old.is_primitive and type(old) is type(new):
            continue  # nested: union_by_name checks the inner fields and names them itself
        raise ConfigError(
            f"table {identifier}: column {field.name!r} is {old} in the table but {new} in the source; "
            "Iceberg cannot convert between them",
            column=field.name, table_type=str(old), source_type=str(new),
        )


def evolve(txn: Transaction, schema: pa.Schema, identifier: str) -> None:
    """Stage the schema change (if any) in ``txn``, so it commits with the data."""
    current = txn.table_metadata.schema()
    incoming = iceberg_schema(schema, identifier)
    check_compatible(current, incoming, identifier)
    if _covers(current, incoming):
        return
    try:
        with txn.update_schema() as update:
            update.union_by_name(incoming)
    except (ValidationError, ValueError) as exc:
        raise ConfigError(f"table {identifier}: cannot evolve the schema: {exc}") from exc


def _covers(current: Schema, incoming: Schema) -> bool:
    """True when every incoming column exists with the same or a wider type: nothing to change."""
    struct = current.as_struct()
    for field in incoming.fields:
        existing = struct.field_by_name(field.name)
        if existing is None:
            return False
        if existing.field_type == field.field_type:
            continue
        if not field.field_type.is_primitive or not _widens(field.field_type, existing.field_type):
            return False
    return True
