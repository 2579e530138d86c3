"""Source names → table names every engine can open (the rule in docs/destinations.md, "Table names").

Source names are arbitrary text (`sales."Q3; DROP"`, `v1.2 data`, `Bestellungen-Österreich`);
Iceberg identifiers end up in storage paths and in SQL, where Trino and Spark fold case and
DuckDB cannot open a path holding a quote. So every table name is lowercase letters, digits
and `_`, and two different source names never share one:

- a name part already of that shape after lowercasing is kept, lowercased: ``Orders`` → ``orders``
  (readers fold case anyway, and users expect ``Account`` from Salesforce to be ``account``);
- any other part is transliterated to ASCII, lowercased, each run of other characters becomes
  ``_``, and ``_`` plus eight hex digits of the original's SHA-256 are appended:
  ``v1.2 data`` → ``v1_2_data_<hash>``. The hash keeps two names apart that differ only in
  punctuation, and is stable across runs;
- a kept part never looks like a hashed one: a part that already ends in ``_`` and eight hex
  digits, or holds ``__``, is hashed too (``__`` joins schema and table: a stream ``sales.y``
  becomes ``sales__y``, and the schema is left out when it is a database's default
  (``public``, ``main``, ``dbo``): ``public.y`` becomes ``y``).

So two streams land on one name only when they differ in case alone (``Orders``, ``orders``),
through a default schema (``public.y``, ``main.y``, ``y``) or by a 32-bit hash collision; pipelines
refuse all of these when they are created or changed (see ``table_collisions``, and the
orchestrator's check of tables other pipelines write), so no two streams ever write one table.
The original name is kept in the table's properties.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

DEFAULT_SCHEMAS = frozenset({"public", "main", "dbo"})
SEPARATOR = "__"
MAX_PART = 80
_SAFE = re.compile(r"[a-z0-9_]+")
_UNSAFE_RUN = re.compile(r"[^a-z0-9]+")
_HASHED = re.compile(r".*_[0-9a-f]{8}")


def safe_part(original: str) -> str:
    """One name part (a schema or a table) as lowercase letters, digits and single underscores."""
    folded = original.lower()
    if (_SAFE.fullmatch(folded) and SEPARATOR not in folded and len(folded) <= MAX_PART
            and not _HASHED.fullmatch(folded)):
        return folded
    ascii_text = unicodedata.normalize("NFKD", original).encode("ascii", "ignore").decode("ascii").lower()
    base = _UNSAFE_RUN.sub("_", ascii_text).strip("_")[:MAX_PART].strip("_")
    digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{base}_{digest}" if base else f"t_{digest}"


def table_name(stream: str, prefix: str = "") -> str:
    """The table a stream is loaded into: ``sales.orders`` → ``<prefix>sales__orders``,
    ``public.orders`` → ``<prefix>orders``. The first dot splits schema from table, as sources do."""
    schema, dot, table = stream.partition(".")
    if not dot:
        return prefix + safe_part(stream)
    if schema in DEFAULT_SCHEMAS:
        return prefix + safe_part(table)
    return prefix + safe_part(schema) + SEPARATOR + safe_part(table)


def table_identifier(namespace: str, prefix: str, stream: str) -> str:
    return f"{namespace}.{table_name(stream, prefix)}"


def table_collisions(streams: Iterable[str], prefix: str = "") -> list[tuple[str, str, str]]:
    """``(first stream, second stream, table)`` for every pair of streams that would share a table."""
    owners: dict[str, str] = {}
    clashes: list[tuple[str, str, str]] = []
    for stream in streams:
        name = table_name(stream, prefix)
        first = owners.setdefault(name, stream)
        if first != stream:
            clashes.append((first, stream, name))
    return clashes
