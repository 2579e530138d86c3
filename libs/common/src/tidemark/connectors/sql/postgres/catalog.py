"""PostgreSQL catalog queries: tables, views and their columns, keys and privileges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tidemark.connectors.sql.config import SqlConfig
from tidemark.connectors.sql.postgres.types import PgType, map_type
from tidemark.connectors.sql.tables import SqlColumn, SqlTable

# Tables, partitioned tables, views, materialized views and foreign tables; partitions
# are read through their parent. Domains resolve to their base type here (one level).
COLUMNS_SQL = """
SELECT n.nspname, c.relname, c.relkind,
       has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT') AS readable,
       a.attname, a.attnotnull, format_type(a.atttypid, a.atttypmod) AS declared,
       bt.typname, bt.typtype, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod,
       et.typname AS elem_typname, et.typtype AS elem_typtype, a.attndims,
       pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) AS column_default
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_catalog.pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND left(n.nspname, 8) <> 'pg_temp_' AND left(n.nspname, 14) <> 'pg_toast_temp_'
  {filters}
ORDER BY n.nspname, c.relname, a.attnum
"""

KEYS_SQL = """
SELECT n.nspname, c.relname, a.attname
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indisprimary {filters}
ORDER BY n.nspname, c.relname, k.position
"""

SCHEMAS_SQL = """
SELECT n.nspname, has_schema_privilege(n.oid, 'USAGE')
FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY(%s)
"""


@dataclass(frozen=True)
class Scope:
    """Which relations a query looks at: configured schemas, and one stream when reading."""

    schemas: Sequence[str] = ()
    stream: str | None = None

    def filters(self) -> tuple[str, list[Any]]:
        sql, params = "", list[Any]()
        if self.schemas:
            sql += " AND n.nspname = ANY(%s)"
            params.append(list(self.schemas))
        if self.stream is not None:
            sql += " AND n.nspname || '.' || c.relname = %s"
            params.append(self.stream)
        return sql, params


@dataclass
class _Relation:
    namespace: str
    name: str
    is_view: bool
    readable: bool
    columns: list[SqlColumn]


def fetch_relations(conn: Any, scope: Scope) -> list[tuple[SqlTable, bool]]:
    """Every relation in ``scope`` as ``(table, readable by the current user)``."""
    filters, params = scope.filters()
    relations: dict[tuple[str, str], _Relation] = {}
    with conn.cursor() as cur:
        cur.execute(COLUMNS_SQL.format(filters=filters), params)
        for (nsp, rel, kind, readable, attname, notnull, declared, typname, typtype, typmod,
             elem_typname, elem_typtype, ndims, column_default) in cur.fetchall():
            entry = relations.setdefault(
                (nsp, rel), _Relation(nsp, rel, kind in ("v", "m"), bool(readable), [])
            )
            pg_type = PgType(typname=typname, typtype=typtype, typmod=typmod, elem_typname=elem_typname,
                             elem_typtype=elem_typtype, ndims=ndims or 0)
            mapped = map_type(pg_type, declared)
            entry.columns.append(SqlColumn(
                name=attname, source_type=declared, arrow_type=mapped.arrow_type, nullable=not notnull,
                select=mapped.select, warning=mapped.warning, default=column_default,
            ))
        keys: dict[tuple[str, str], list[str]] = {}
        cur.execute(KEYS_SQL.format(filters=filters), params)
        for nsp, rel, attname in cur.fetchall():
            keys.setdefault((nsp, rel), []).append(attname)
    return [
        (SqlTable(namespace=r.namespace, name=r.name, columns=tuple(r.columns),
                  primary_key=tuple(keys.get(k, ())), is_view=r.is_view), r.readable)
        for k, r in relations.items()
    ]


def in_scope(config: SqlConfig, stream: str) -> bool:
    return not config.tables or stream in config.tables


def schema_access(conn: Any, schemas: Sequence[str]) -> dict[str, bool]:
    """``{schema: has USAGE}`` for the configured schemas that exist."""
    with conn.cursor() as cur:
        cur.execute(SCHEMAS_SQL, [list(schemas)])
        return {name: bool(usage) for name, usage in cur.fetchall()}
