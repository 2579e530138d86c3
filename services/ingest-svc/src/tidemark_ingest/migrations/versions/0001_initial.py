"""initial

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 02:13:14.511538
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
    op.create_table('worker_runs',
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('pipeline_id', sa.Uuid(), nullable=False),
    sa.Column('spec', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('launcher', sa.String(length=32), nullable=False),
    sa.Column('worker_ref', sa.String(length=253), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('requested_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('stats', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('run_id')
    )
    with op.batch_alter_table('worker_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_runs_pipeline_id'), ['pipeline_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_worker_runs_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('worker_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_runs_status'))
        batch_op.drop_index(batch_op.f('ix_worker_runs_pipeline_id'))

    op.drop_table('worker_runs')
    op.drop_table('processed_events')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_published_at'))

    op.drop_table('outbox')
