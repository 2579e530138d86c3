"""Reconciliation: a write commits only when it holds every row the source yielded.

Checked just before the commit, from what the commit is made of (the record counts of its data
files, and for a full refresh the table's row count as the staged snapshot states it), so a
stream whose rows went missing anywhere between the source's reader and the files fails with
both numbers and leaves its table as it was. Checking after the commit could only report a
short table that readers already see.
"""

from __future__ import annotations

from collections.abc import Callable

from tidemark.errors import ReconciliationError


def reconcile(identifier: str, rows_read: Callable[[], int] | None, committing: int,
              table_rows: int | None = None) -> int | None:
    """The rows read, after checking that ``committing`` (and ``table_rows``, when given) equal them;
    None when the caller gave no count to check against."""
    if rows_read is None:
        return None
    try:
        read = rows_read()
    except ReconciliationError as exc:  # the reader's own check (the source's count): add what we know
        exc.detail.setdefault("rows_committed", committing)
        exc.detail.setdefault("table_rows", table_rows)
        raise
    if committing != read:
        raise ReconciliationError(
            f"table {identifier}: {read} rows were read but {committing} reached the files to commit; "
            "nothing was committed", rows_read=read, rows_committed=committing, table_rows=table_rows)
    if table_rows is not None and table_rows != read:
        raise ReconciliationError(
            f"table {identifier}: {read} rows were read but the table would hold {table_rows} after the "
            "full refresh; nothing was committed", rows_read=read, rows_committed=committing, table_rows=table_rows)
    return read
