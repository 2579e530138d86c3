"""cancel: worker_runs.cancel_reason, why a run is being stopped

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 19:46:38.075882
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import tidemark.db.types


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('worker_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancel_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('worker_runs', schema=None) as batch_op:
        batch_op.drop_column('cancel_reason')
