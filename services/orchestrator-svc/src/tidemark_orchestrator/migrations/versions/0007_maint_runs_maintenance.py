"""maintenance: runs.maintenance (what a run triggered `maintenance` does), pipelines.maintenance (policy)
and pipelines.maintained_at

Revision ID: 0007_maint
Revises: 0007_k8s_worker
Create Date: 2026-12-06 00:30:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import tidemark.db.types
from sqlalchemy.dialects import postgresql


revision: str = '0007_maint'
down_revision: str | None = '0007_k8s_worker'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'maintenance', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
            nullable=True))
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'maintenance', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
            nullable=True))
        batch_op.add_column(sa.Column('maintained_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.drop_column('maintained_at')
        batch_op.drop_column('maintenance')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('maintenance')
