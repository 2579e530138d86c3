"""Per-stream partitioning: one description, two layouts.

Iceberg gets a real partition spec (created with the table, evolved in the
write's own commit when the stream asks for a different one). Parquet gets
hive-style directories named the way Iceberg names its partition fields:
``country=NL/``, ``updated_at_day=2026-01-05/``, ``updated_at_month=2026-01/``,
``id_bucket_16=3/``. Identity columns live in the directory name only (the Hive
convention, so readers do not see the column twice); derived values sit beside
their source column, which stays in the files.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pyarrow as pa
from pyiceberg.partitioning import PartitionField as IcebergPartitionField
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Transaction
from pyiceberg.transforms import IdentityTransform, TimeTransform, Transform, parse_transform
from pyiceberg.types import IcebergType

from tidemark.errors import ConfigError
from tidemark.events import PartitionField
from tidemark.lakehouse.naming import safe_part

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_PATH_SAFE = re.compile(r"[A-Za-z0-9_]+")
_FIRST_FIELD_ID = 1000  # Iceberg numbers partition fields from 1000


@dataclass(frozen=True)
class Part:
    column: str
    transform: Transform[Any, Any]
    source_type: IcebergType

    @property
    def name(self) -> str:
        """The partition field's name, as Iceberg would choose it (and the Parquet directory key)."""
        transform = str(self.transform)
        # Column names are kept verbatim in the schema, but this one names a directory too.
        column = self.column if _PATH_SAFE.fullmatch(self.column) else safe_part(self.column)
        if transform == "identity":
            return column
        if transform.startswith("bucket["):
            return f"{column}_bucket_{transform[7:-1]}"
        if transform.startswith("truncate["):
            return f"{column}_trunc_{transform[9:-1]}"
        return f"{column}_{transform}"

    @property
    def key(self) -> tuple[str, str]:
        return self.column, str(self.transform)


def parts(fields: Sequence[PartitionField], schema: Schema, identifier: str) -> list[Part]:
    """Check ``fields`` against ``schema`` (columns exist, transforms apply, no repeats)."""
    result: list[Part] = []
    for field in fields:
        found = schema.find_field(field.column) if field.column in schema.column_names else None
        if found is None:
            raise ConfigError(
                f"table {identifier}: partition column {field.column!r} is not in the stream",
                column=field.column,
            )
        transform = parse_transform(field.transform)
        if not transform.can_transform(found.field_type):
            raise ConfigError(
                f"table {identifier}: column {field.column!r} is {found.field_type}, "
                f"which cannot be partitioned by {field.transform}",
                column=field.column, transform=field.transform,
            )
        part = Part(field.column, transform, found.field_type)
        if any(p.key == part.key or p.name == part.name for p in result):
            raise ConfigError(f"table {identifier}: partition field {field.column} {field.transform} is repeated")
        result.append(part)
    return result


def described(items: Sequence[Part]) -> list[dict[str, str]]:
    return [{"column": p.column, "transform": str(p.transform)} for p in items]


# --- Iceberg -------------------------------------------------------------------------------------------------


def new_spec(items: Sequence[Part], schema: Schema) -> PartitionSpec:
    """The spec of a new table whose (id-assigned) schema is ``schema``."""
    return PartitionSpec(*[
        IcebergPartitionField(source_id=schema.find_field(p.column).field_id, field_id=_FIRST_FIELD_ID + n,
                              transform=p.transform, name=p.name)
        for n, p in enumerate(items)
    ])


def current_keys(txn: Transaction) -> list[tuple[str, str]]:
    metadata = txn.table_metadata
    schema = metadata.schema()
    return [(schema.find_column_name(f.source_id) or "", str(f.transform)) for f in metadata.spec().fields]


def evolve_spec(txn: Transaction, items: Sequence[Part]) -> bool:
    """Stage a spec change in ``txn`` when the table's spec differs from ``items``; True if it did.

    Files already written keep their old spec (Iceberg reads both); new files use the new one.
    """
    wanted = [p.key for p in items]
    if current_keys(txn) == wanted:
        return False
    spec = txn.table_metadata.spec()
    schema = txn.table_metadata.schema()
    with txn.update_spec() as update:
        for field in spec.fields:
            if (schema.find_column_name(field.source_id), str(field.transform)) not in wanted:
                update.remove_field(field.name)
        have = current_keys(txn)
        for part in items:
            if part.key not in have:
                update.add_field(part.column, part.transform, part.name)
    return True


# --- Parquet -------------------------------------------------------------------------------------------------


def split(data: pa.Table, items: Sequence[Part]) -> Iterator[tuple[str, pa.Table]]:
    """``data`` cut into (hive directory path, rows) per partition; identity columns leave the rows."""
    if not items or data.num_rows == 0:
        if data.num_rows:
            yield "", data
        return
    keys = {f"__k{n}": _partition_values(data[p.column], p) for n, p in enumerate(items)}
    index = pa.table({**keys, "__row": pa.array(range(data.num_rows), pa.int64())})
    groups = index.group_by(list(keys), use_threads=False).aggregate([("__row", "list")])
    stored = data.drop_columns([p.column for p in items if isinstance(p.transform, IdentityTransform)])
    for row in groups.to_pylist():
        path = "/".join(f"{quote(p.name, safe='')}={_segment(p, row[f'__k{n}'])}" for n, p in enumerate(items))
        yield path, stored.take(pa.array(row["__row_list"], pa.int64()))


def _partition_values(column: pa.ChunkedArray, part: Part) -> pa.Array:
    array = column.combine_chunks()
    if isinstance(part.transform, IdentityTransform):
        return array
    return part.transform.pyarrow_transform(part.source_type)(array)


def _segment(part: Part, value: Any) -> str:
    if value is None:
        return HIVE_NULL
    if isinstance(part.transform, TimeTransform):
        text = part.transform.to_human_string(part.source_type, value)
    else:
        text = _human(value)
    return quote(text, safe="")


def _human(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)
