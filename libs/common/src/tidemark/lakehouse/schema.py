"""Schema on write: add new columns, apply safe widenings, refuse incompatible changes by name."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from pyiceberg.exceptions import ResolveError, ValidationError
from pyiceberg.io.pyarrow import UnsupportedPyArrowTypeException, _pyarrow_to_schema_without_ids
from pyiceberg.schema import Schema, promote
from pyiceberg.table import Transaction
from pyiceberg.types import DoubleType, FloatType, IcebergType, NestedField

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


def keyed_schema(schema: Schema, primary_key: Sequence[str]) -> Schema:
    """``schema`` with ``primary_key`` as its identifier fields (engines upsert on them) and those
    columns required; every other column stays optional. Left unkeyed when a key column cannot be
    an identifier field (nested, float or double, by the Iceberg spec)."""
    key = set(primary_key)
    struct = schema.as_struct()
    keyed = [struct.field_by_name(name) for name in primary_key]
    if not key or any(f is None or not f.field_type.is_primitive or isinstance(f.field_type, FloatType | DoubleType)
                      for f in keyed):
        return schema
    fields = [NestedField(f.field_id, f.name, f.field_type, required=f.name in key, doc=f.doc)
              for f in schema.fields]
    ids = [f.field_id for f in keyed if f is not None]
    return Schema(*fields, schema_id=schema.schema_id, identifier_field_ids=ids)


def required_as_in(target: pa.Schema, table_schema: Schema) -> pa.Schema:
    """``target`` with the columns the table requires marked non-nullable, as pyiceberg's checks want."""
    required = {f.name for f in table_schema.fields if f.required}
    if not required:
        return target
    return pa.schema([f.with_nullable(f.name not in required) for f in target])


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
