"""drift policy: pipelines.drift_policy (responses to schema changes) and drift_failure (the next run fails)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 21:40:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'drift_policy', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
            nullable=True))
        batch_op.add_column(sa.Column('drift_failure', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.drop_column('drift_failure')
        batch_op.drop_column('drift_policy')
