"""One catalog query per database whose single row changes when any table, column, type,
nullability, default or key in scope changes: schema-svc polls it and discovers only on a change.

Each database hashes its catalog rows server-side, so an unchanged catalog of thousands of
columns costs one round trip and a few bytes back."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any


def digest(row: Sequence[Any] | None) -> str:
    """The fingerprint of the query's one row (whatever types the driver hands back)."""
    return hashlib.sha256(repr(tuple(row or ())).encode()).hexdigest()[:32]


def in_list(values: Sequence[str]) -> str:
    return ", ".join(["%s"] * len(values))


# PostgreSQL: the same relations and columns the catalog query reads, hashed with md5 in order.
POSTGRES_SQL = """
SELECT count(*), md5(coalesce(string_agg(concat_ws('|', n.nspname, c.relname, c.relkind, a.attnum, a.attname,
           format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid),
           array_position(pk.indkey::int2[], a.attnum),
           has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')),
       E'\\n' ORDER BY n.nspname, c.relname, a.attnum), ''))
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
LEFT JOIN pg_catalog.pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND left(n.nspname, 8) <> 'pg_temp_' AND left(n.nspname, 14) <> 'pg_toast_temp_'
  {filters}
"""


def postgres(schemas: Sequence[str], tables: Sequence[str]) -> tuple[str, list[Any]]:
    filters, params = "", list[Any]()
    if schemas:
        filters += " AND n.nspname = ANY(%s)"
        params.append(list(schemas))
    if tables:
        filters += " AND n.nspname || '.' || c.relname = ANY(%s)"
        params.append(list(tables))
    return POSTGRES_SQL.format(filters=filters), params


def mysql(databases: Sequence[str], tables: Sequence[str]) -> tuple[str, list[Any]]:
    """MySQL and MariaDB: no ordered aggregate without GROUP_CONCAT's length cap, so an
    order-free one over each row's md5 (rows carry their position, so order is in them)."""
    table_filter = f" AND CONCAT(c.TABLE_SCHEMA, '.', c.TABLE_NAME) IN ({in_list(tables)})" if tables else ""
    sql = f"""
SELECT COUNT(*), BIT_XOR(CAST(CONV(LEFT(h, 16), 16, 10) AS UNSIGNED)),
       SUM(CAST(CONV(SUBSTRING(h, 17, 15), 16, 10) AS UNSIGNED))
FROM (SELECT MD5(CONCAT_WS('|', c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION, c.COLUMN_NAME, c.COLUMN_TYPE,
                           c.IS_NULLABLE, COALESCE(c.COLUMN_DEFAULT, '<none>'), c.COLUMN_KEY)) AS h
      FROM information_schema.COLUMNS c
      WHERE c.TABLE_SCHEMA IN ({in_list(databases)}){table_filter}) hashed
"""  # noqa: S608 - only placeholders are interpolated
    return sql, [*databases, *tables]


def information_schema(schemas: Sequence[str], hashed_row: str, aggregate: str) -> tuple[str, list[Any]]:
    """Databases with ``information_schema.columns`` and their own hash functions (SQL Server, Redshift)."""
    schema_filter = f" AND table_schema IN ({in_list(schemas)})" if schemas else ""
    sql = f"""
SELECT COUNT(*), {aggregate}
FROM (SELECT {hashed_row} AS h FROM information_schema.columns
      WHERE table_schema NOT IN ('information_schema', 'pg_catalog', 'sys'){schema_filter}) hashed
"""  # noqa: S608 - only placeholders and fixed expressions are interpolated
    return sql, list(schemas)


def redshift(schemas: Sequence[str]) -> tuple[str, list[Any]]:
    row = ("md5(table_schema || '|' || table_name || '|' || ordinal_position || '|' || column_name || '|' || "
           "data_type || '|' || coalesce(character_maximum_length, -1) || '|' || coalesce(numeric_precision, -1) "
           "|| '|' || coalesce(numeric_scale, -1) || '|' || is_nullable || '|' || coalesce(column_default, ''))")
    return information_schema(schemas, row, "SUM(strtol(left(h, 8), 16)), SUM(strtol(substring(h, 9, 8), 16))")


def mssql(schemas: Sequence[str]) -> tuple[str, list[Any]]:
    row = ("BINARY_CHECKSUM(table_schema, table_name, ordinal_position, column_name, data_type, "
           "character_maximum_length, numeric_precision, numeric_scale, is_nullable, column_default)")
    return information_schema(schemas, row, "CHECKSUM_AGG(h)")
