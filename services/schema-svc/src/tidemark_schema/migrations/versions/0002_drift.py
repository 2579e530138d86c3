"""drift: versioned snapshots, polling state per watched connection, drift events

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 21:10:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import tidemark.db.types
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('watched_connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('poll_interval_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('fingerprint', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('last_polled_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('next_poll_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_watched_connections_next_poll_at'), ['next_poll_at'], unique=False)

    # Snapshots taken before versions existed were never diffed: the next poll starts again at version 1.
    op.execute("DELETE FROM schema_snapshots")
    with op.batch_alter_table('schema_snapshots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False))
        batch_op.add_column(sa.Column('changes', JSON, nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_schema_snapshots_connection_id'), ['connection_id', 'version'])

    op.create_table('drift_events',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('connection_id', sa.Uuid(), nullable=False),
    sa.Column('snapshot_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('detected_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('changes', JSON, nullable=False),
    sa.Column('kinds', sa.String(length=255), nullable=False),
    sa.Column('breaking', sa.Boolean(), nullable=False),
    sa.Column('actions', JSON, nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('drift_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_drift_events_breaking'), ['breaking'], unique=False)
        batch_op.create_index(batch_op.f('ix_drift_events_connection_id'), ['connection_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_drift_events_detected_at'), ['detected_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('drift_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_drift_events_detected_at'))
        batch_op.drop_index(batch_op.f('ix_drift_events_connection_id'))
        batch_op.drop_index(batch_op.f('ix_drift_events_breaking'))
    op.drop_table('drift_events')
    with op.batch_alter_table('schema_snapshots', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_schema_snapshots_connection_id'), type_='unique')
        batch_op.drop_column('changes')
        batch_op.drop_column('version')
    with op.batch_alter_table('watched_connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_watched_connections_next_poll_at'))
        batch_op.drop_column('last_error')
        batch_op.drop_column('next_poll_at')
        batch_op.drop_column('last_polled_at')
        batch_op.drop_column('fingerprint')
        batch_op.drop_column('poll_interval_seconds')
