"""drift impact: pipelines projection, drifts and their actions, alert rules, deliverable alerts

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 21:30:00.000000
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
    op.create_table('pipelines',
    sa.Column('pipeline_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('connection_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('streams', JSON, nullable=False),
    sa.Column('destination', JSON, nullable=False),
    sa.Column('upstreams', JSON, nullable=False),
    sa.Column('drift_policy', JSON, nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('updated_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('pipeline_id')
    )
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pipelines_connection_id'), ['connection_id'], unique=False)

    op.create_table('drifts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('connection_id', sa.Uuid(), nullable=False),
    sa.Column('connection_name', sa.String(length=128), nullable=True),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('detected_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('changes', JSON, nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('drifts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_drifts_connection_id'), ['connection_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_drifts_detected_at'), ['detected_at'], unique=False)

    op.create_table('drift_actions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('drift_id', sa.Uuid(), nullable=False),
    sa.Column('pipeline_id', sa.Uuid(), nullable=False),
    sa.Column('change_kind', sa.String(length=32), nullable=False),
    sa.Column('stream', sa.String(length=255), nullable=False),
    sa.Column('column', sa.String(length=255), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('created_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('drift_actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_drift_actions_drift_id'), ['drift_id'], unique=False)

    op.create_table('alert_rules',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('connection_id', sa.Uuid(), nullable=True),
    sa.Column('pipeline_id', sa.Uuid(), nullable=True),
    sa.Column('min_severity', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )

    with op.batch_alter_table('downstreams', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=16), nullable=False, server_default='api'))
    with op.batch_alter_table('downstreams', schema=None) as batch_op:
        batch_op.alter_column('origin', server_default=None)

    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dedup_key', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('rule_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('drift_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('detail', JSON, nullable=True))
        batch_op.add_column(sa.Column('delivery', sa.String(length=16), nullable=False, server_default='none'))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_by', sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f('ix_alerts_drift_id'), ['drift_id'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_alerts_dedup_key'), ['dedup_key'])
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.alter_column('delivery', server_default=None)
        batch_op.alter_column('attempts', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_alerts_dedup_key'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_alerts_drift_id'))
        for column in ('acknowledged_by', 'acknowledged_at', 'claimed_at', 'delivered_at', 'last_error', 'attempts', 'delivery',
                       'detail', 'drift_id', 'rule_id', 'dedup_key'):
            batch_op.drop_column(column)
    with op.batch_alter_table('downstreams', schema=None) as batch_op:
        batch_op.drop_column('origin')
    op.drop_table('alert_rules')
    with op.batch_alter_table('drift_actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_drift_actions_drift_id'))
    op.drop_table('drift_actions')
    with op.batch_alter_table('drifts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_drifts_detected_at'))
        batch_op.drop_index(batch_op.f('ix_drifts_connection_id'))
    op.drop_table('drifts')
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pipelines_connection_id'))
    op.drop_table('pipelines')
