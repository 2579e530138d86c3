"""maintenance trigger: run_totals rows for runs triggered `maintenance`

Revision ID: 0003_maint
Revises: 0002
Create Date: 2026-12-06 00:30:00.000000
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0003_maint'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("scheduled", "queued", "starting", "running", "succeeded", "partially_succeeded", "failed", "cancelled")


def upgrade() -> None:
    # The projection only updates run_totals rows: each (status, trigger) pair needs one.
    values = ", ".join(f"('{s}', 'maintenance', 0)" for s in STATUSES)
    op.execute(f"INSERT INTO run_totals (status, \"trigger\", runs) VALUES {values}")


def downgrade() -> None:
    op.execute("DELETE FROM run_totals WHERE \"trigger\" = 'maintenance'")
