"""Downstreams from other tools' lineage: a dbt ``manifest.json`` and OpenLineage run events."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from tidemark_impact.schemas import TABLE_PATTERN, DbtManifest, DownstreamCreate, OpenLineageRunEvent

_TABLE = re.compile(TABLE_PATTERN)


def _dict(value: Any) -> dict[str, Any]:
    """Other tools' documents are read leniently: a part of the wrong shape counts as absent."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _named(name: str, table: str, tables: int) -> str:
    """One downstream per table it reads; a thing reading several is named once per table."""
    return (name if tables == 1 else f"{name} ({table})")[:200]


def dbt_downstreams(manifest: DbtManifest) -> list[DownstreamCreate]:
    """Each model and exposure becomes a downstream of the dbt sources it depends on, directly or
    through other models (a dbt source is the warehouse table `schema.identifier`)."""
    sources = {uid: f"{_dict(s).get('schema')}.{_dict(s).get('identifier') or _dict(s).get('name')}"
               for uid, s in manifest.sources.items()}

    def tables_of(node: dict[str, Any], seen: set[str]) -> set[str]:
        found: set[str] = set()
        for dep in _list(_dict(node.get("depends_on")).get("nodes")):
            if not isinstance(dep, str):
                continue
            if dep in sources:
                found.add(sources[dep])
            elif dep in manifest.nodes and dep not in seen:
                seen.add(dep)
                found |= tables_of(_dict(manifest.nodes[dep]), seen)
        return {t for t in found if _TABLE.match(t)}

    out: list[DownstreamCreate] = []
    for uid, node in ((u, _dict(n)) for u, n in manifest.nodes.items()):
        if node.get("resource_type") == "model":
            out.extend(_each(str(node.get("name") or uid), "model", tables_of(node, {uid}), None, None))
    for uid, exposure in ((u, _dict(e)) for u, e in manifest.exposures.items()):
        owner = _dict(exposure.get("owner"))
        kind = "dashboard" if exposure.get("type") == "dashboard" else "report"
        out.extend(_each(str(exposure.get("label") or exposure.get("name") or uid), kind,
                         tables_of(exposure, set()), exposure.get("url"), owner.get("email") or owner.get("name")))
    return out


def _valid(**fields: Any) -> list[DownstreamCreate]:
    """The downstream, or nothing when another tool's document gives it no usable name or table."""
    try:
        return [DownstreamCreate(**fields)]
    except ValidationError:
        return []


def _each(name: str, kind: str, tables: Iterable[str], url: Any, owner: Any) -> list[DownstreamCreate]:
    found = sorted(tables)
    return [d for t in found for d in _valid(name=_named(name, t, len(found)), kind=kind, table=t,
                                             url=str(url)[:2048] if url else None,
                                             owner=str(owner)[:200] if owner else None)]


def table_of(dataset_name: str) -> str:
    """A dataset name as a Tidemark table: its last two parts (`warehouse/ns/t`, `catalog.ns.t` → `ns.t`)."""
    parts = [p for p in re.split(r"[./]", dataset_name) if p]
    return ".".join(parts[-2:])


def openlineage_downstreams(event: OpenLineageRunEvent, known_tables: set[str]) -> list[DownstreamCreate]:
    """The job as a downstream of each input that is a Tidemark table, with the input's columns its
    outputs' column-lineage facets name (unknown when no output has the facet)."""
    inputs = [(d, table_of(d.name)) for d in event.inputs]
    inputs = [(d, t) for d, t in inputs if t in known_tables]
    columns: dict[str, set[str]] = {}
    has_lineage = False
    for output in event.outputs:
        fields = _dict(_dict(output.facets.get("columnLineage")).get("fields"))
        for spec in fields.values():
            has_lineage = True
            for source in map(_dict, _list(_dict(spec).get("inputFields"))):
                if source.get("field") is not None:
                    columns.setdefault(table_of(str(source.get("name", ""))), set()).add(str(source.get("field")))
    name = f"{event.job.namespace}/{event.job.name}" if event.job.namespace else event.job.name
    return [d for _, t in inputs for d in _valid(name=_named(name, t, len(inputs)), kind="job", table=t,
                                                 columns=sorted(columns.get(t, set())) if has_lineage else None)]
