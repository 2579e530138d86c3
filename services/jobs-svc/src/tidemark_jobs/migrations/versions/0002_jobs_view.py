"""jobs view: timeline, totals, logs, filters, pipeline health

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 21:00:00.715313
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

# Every (status, trigger) pair has a row in run_totals ('' = trigger not known yet); the projection
# only ever updates them.
STATUSES = ("scheduled", "queued", "starting", "running", "succeeded", "partially_succeeded", "failed", "cancelled")
TRIGGERS = ("", "manual", "schedule", "dependency", "retry")


def upgrade() -> None:
    op.create_table('pipeline_health',
    sa.Column('pipeline_id', sa.Uuid(), nullable=False),
    sa.Column('last_status', sa.String(length=24), nullable=False),
    sa.Column('last_finished_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('first_finished_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_success_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('pipeline_id')
    )
    op.create_table('run_logs',
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('logger', sa.String(length=128), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'seq')
    )
    op.create_table('run_totals',
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('runs', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('status', 'trigger')
    )
    op.create_table('run_transitions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('run_transitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_transitions_run_id'), ['run_id'], unique=False)

    with op.batch_alter_table('run_views', schema=None) as batch_op:
        batch_op.add_column(sa.Column('connection_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('retry_of', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('queued_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('not_before', tidemark.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('wait_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('error_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('error_stream', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('log_records', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('logs_dropped', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('list_order', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.create_index(batch_op.f('ix_run_views_connection_id'), ['connection_id'], unique=False)
        batch_op.create_index('ix_run_views_finished', ['finished_at'], unique=False)
        batch_op.create_index('ix_run_views_order', ['list_order', 'run_id'], unique=False)
        batch_op.create_index('ix_run_views_pipeline_order', ['pipeline_id', 'list_order', 'run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_run_views_retry_of'), ['retry_of'], unique=False)
        batch_op.create_index('ix_run_views_scheduled', ['scheduled_for'], unique=False)
        batch_op.create_index('ix_run_views_started', ['started_at'], unique=False)
        batch_op.create_index('ix_run_views_status_order', ['status', 'list_order', 'run_id'], unique=False)

    # Runs stored before: queued when requested; upcoming ones ordered by their tick (see RunView.list_order).
    op.execute("UPDATE run_views SET queued_at = COALESCE(requested_at, started_at, updated_at) "
               "WHERE status <> 'scheduled'")
    if op.get_bind().dialect.name == "postgresql":
        micros = "(EXTRACT(EPOCH FROM {0}) * 1000000)::bigint"
    else:
        micros = "CAST(ROUND((julianday({0}) - 2440587.5) * 86400000000) AS INTEGER)"
    op.execute(f"UPDATE run_views SET list_order = CASE WHEN queued_at IS NOT NULL THEN {micros.format('queued_at')} "
               f"ELSE -{micros.format('scheduled_for')} END")
    pairs = " UNION ALL ".join(f"SELECT '{s}' AS status, '{t}' AS tr" for s in STATUSES for t in TRIGGERS)
    op.execute("INSERT INTO run_totals (status, \"trigger\", runs) SELECT p.status, p.tr, COUNT(v.run_id) "
               f"FROM ({pairs}) p LEFT JOIN run_views v ON v.status = p.status AND COALESCE(v.\"trigger\", '') = p.tr "
               "GROUP BY p.status, p.tr")
    op.execute("INSERT INTO pipeline_health (pipeline_id, last_status, last_finished_at, first_finished_at, "
               "last_success_at) SELECT v.pipeline_id, (SELECT w.status FROM run_views w WHERE w.pipeline_id = "
               "v.pipeline_id AND w.finished_at IS NOT NULL ORDER BY w.finished_at DESC LIMIT 1), "
               "MAX(v.finished_at), MIN(v.finished_at), MAX(CASE WHEN v.status = 'succeeded' THEN v.finished_at END) "
               "FROM run_views v WHERE v.finished_at IS NOT NULL GROUP BY v.pipeline_id")


def downgrade() -> None:
    with op.batch_alter_table('run_views', schema=None) as batch_op:
        batch_op.drop_index('ix_run_views_status_order')
        batch_op.drop_index('ix_run_views_started')
        batch_op.drop_index('ix_run_views_scheduled')
        batch_op.drop_index(batch_op.f('ix_run_views_retry_of'))
        batch_op.drop_index('ix_run_views_pipeline_order')
        batch_op.drop_index('ix_run_views_order')
        batch_op.drop_index('ix_run_views_finished')
        batch_op.drop_index(batch_op.f('ix_run_views_connection_id'))
        batch_op.drop_column('list_order')
        batch_op.drop_column('logs_dropped')
        batch_op.drop_column('log_records')
        batch_op.drop_column('error_stream')
        batch_op.drop_column('error_kind')
        batch_op.drop_column('wait_reason')
        batch_op.drop_column('not_before')
        batch_op.drop_column('queued_at')
        batch_op.drop_column('retry_of')
        batch_op.drop_column('connection_id')

    with op.batch_alter_table('run_transitions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_transitions_run_id'))

    op.drop_table('run_transitions')
    op.drop_table('run_totals')
    op.drop_table('run_logs')
    op.drop_table('pipeline_health')
