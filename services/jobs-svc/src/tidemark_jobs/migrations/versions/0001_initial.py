"""initial

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 02:03:03.126643
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import tidemark.db.types
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('envelope', sa.Text(), nullable=False),
    sa.Column('created_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_published_at'), ['published_at'], unique=False)

    op.create_table('processed_events',
    sa.Column('consumer', sa.String(length=128), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('processed_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'event_id')
    )
    op.create_table('run_views',
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('pipeline_id', sa.Uuid(), nullable=False),
    sa.Column('pipeline_name', sa.String(length=128), nullable=True),
    sa.Column('trigger', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('scheduled_for', tidemark.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('requested_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('rows_read', sa.BigInteger(), nullable=False),
    sa.Column('rows_written', sa.BigInteger(), nullable=False),
    sa.Column('bytes_written', sa.BigInteger(), nullable=False),
    sa.Column('worker_ref', sa.String(length=255), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('streams', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_id')
    )
    with op.batch_alter_table('run_views', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_views_pipeline_id'), ['pipeline_id'], unique=False)
        batch_op.create_index('ix_run_views_status_requested', ['status', 'requested_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('run_views', schema=None) as batch_op:
        batch_op.drop_index('ix_run_views_status_requested')
        batch_op.drop_index(batch_op.f('ix_run_views_pipeline_id'))

    op.drop_table('run_views')
    op.drop_table('processed_events')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_published_at'))

    op.drop_table('outbox')
