"""cancel: pipelines.timeout_seconds, the longest a run may run

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 19:54:32.727139
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import tidemark.db.types


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timeout_seconds', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.drop_column('timeout_seconds')
