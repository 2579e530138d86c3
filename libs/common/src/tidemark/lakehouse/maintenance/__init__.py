"""Table maintenance: compaction, snapshot expiry, orphan cleanup and table health.

Everything here blocks (pyiceberg and pyarrow I/O): services call it off the event loop.
"""

from tidemark.lakehouse.maintenance.compact import (
    CompactionPlan,
    CompactOptions,
    CompactResult,
    compact_table,
    plan_compaction,
    run_compaction,
)
from tidemark.lakehouse.maintenance.expire import ExpireOptions, ExpireResult, expire_snapshots, snapshots_to_expire
from tidemark.lakehouse.maintenance.health import TableHealth, table_health
from tidemark.lakehouse.maintenance.orphans import CleanOptions, CleanResult, clean_orphans, clean_parquet_staging

__all__ = [
    "CleanOptions",
    "CleanResult",
    "CompactOptions",
    "CompactResult",
    "CompactionPlan",
    "ExpireOptions",
    "ExpireResult",
    "TableHealth",
    "clean_orphans",
    "clean_parquet_staging",
    "compact_table",
    "expire_snapshots",
    "plan_compaction",
    "run_compaction",
    "snapshots_to_expire",
    "table_health",
]
