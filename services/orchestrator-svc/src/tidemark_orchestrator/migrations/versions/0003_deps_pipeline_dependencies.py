"""deps pipeline dependencies

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 19:46:06.076782
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import tidemark.db.types


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('pipeline_dependencies',
    sa.Column('downstream_id', sa.Uuid(), nullable=False),
    sa.Column('upstream_id', sa.Uuid(), nullable=False),
    sa.Column('last_run_id', sa.Uuid(), nullable=True),
    sa.Column('last_status', sa.String(length=24), nullable=True),
    sa.Column('last_finished_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('satisfied', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['downstream_id'], ['pipelines.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['upstream_id'], ['pipelines.id'], ),
    sa.PrimaryKeyConstraint('downstream_id', 'upstream_id')
    )
    with op.batch_alter_table('pipeline_dependencies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pipeline_dependencies_upstream_id'), ['upstream_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pipeline_dependencies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pipeline_dependencies_upstream_id'))

    op.drop_table('pipeline_dependencies')
