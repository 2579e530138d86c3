"""Issue columns from ``GET /rest/api/3/field``: system fields by their id (``summary``,
``updated``), custom fields by their display name (``Story Points``, not ``customfield_10016``),
with the id appended when two fields share a name.

Values: numbers as float64 (Jira keeps doubles), dates and times as Arrow dates and UTC
timestamps, a user as its ``accountId``, a project as its ``key``, other single objects
(status, priority, option, version...) as their ``name`` or ``value``, lists and anything
else as JSON text.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

# Columns every issue has, outside ``fields``.
BASE = [("id", pa.int64(), "id"), ("key", pa.string(), "key")]
TYPES: dict[str, pa.DataType] = {"number": pa.float64(), "datetime": pa.timestamp("us", tz="UTC"),
                                 "date": pa.date32()}


@dataclass(frozen=True)
class JiraField:
    id: str
    column: str
    type: pa.DataType
    schema_type: str


def issue_fields(found: list[dict[str, Any]]) -> list[JiraField]:
    usable = [f for f in found if isinstance(f.get("schema"), dict) and f.get("id") not in {"id", "key"}]
    names = Counter(str(f.get("name")) for f in usable if f.get("custom"))
    taken = {str(f["id"]) for f in usable if not f.get("custom")} | {"id", "key"}
    out = []
    for f in usable:
        schema_type = str(f["schema"].get("type", "any"))
        column = str(f["id"])
        if f.get("custom"):
            name = str(f.get("name") or f["id"])
            column = name if names[name] == 1 and name not in taken else f"{name} ({f['id']})"
        out.append(JiraField(str(f["id"]), column, TYPES.get(schema_type, pa.string()), schema_type))
    return out


def plain(value: Any, field: JiraField) -> Any:
    """A field value as its column stores it (see the module's rules)."""
    if value is None or not isinstance(value, dict | list):
        return value
    if isinstance(value, dict):
        if field.schema_type == "user":
            return value.get("accountId")
        if field.schema_type == "project":
            return value.get("key")
        for key in ("name", "value"):
            if isinstance(value.get(key), str):
                return value[key]
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
