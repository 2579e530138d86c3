"""admission: overlap and retry policies on pipelines; runs wait for a slot (admitted_at, waiting_reason); next_check_at

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 21:05:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import tidemark.db.types
from sqlalchemy.dialects import postgresql


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overlap', sa.String(length=16), server_default='queue', nullable=False))
        batch_op.add_column(sa.Column('retries', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))
        batch_op.add_column(sa.Column('next_check_at', tidemark.db.types.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_pipelines_next_check_at'), ['next_check_at'], unique=False)
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('connection_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('retry_of', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('not_before', tidemark.db.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('admitted_at', tidemark.db.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('waiting_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('resync', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))
    # Runs already requested before this revision were sent to the workers: they hold their slot.
    op.execute("UPDATE runs SET admitted_at = requested_at WHERE status IN ('queued', 'starting', 'running')")


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('resync')
        batch_op.drop_column('waiting_reason')
        batch_op.drop_column('admitted_at')
        batch_op.drop_column('not_before')
        batch_op.drop_column('retry_of')
        batch_op.drop_column('connection_id')
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pipelines_next_check_at'))
        batch_op.drop_column('next_check_at')
        batch_op.drop_column('retries')
        batch_op.drop_column('overlap')
