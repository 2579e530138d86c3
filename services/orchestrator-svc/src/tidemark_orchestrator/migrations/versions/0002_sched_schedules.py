"""sched: a schedule is a cron expression with a time zone; catchup; ticks_from

A plain-string ``schedule`` (a cron expression read in UTC) becomes ``{"cron": s, "timezone": "UTC"}``;
the downgrade keeps the expression and drops the zone.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 19:49:53.835070
"""
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
import tidemark.db.types
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _copy(source: sa.ColumnClause[Any], target: sa.ColumnClause[Any], convert: Callable[[Any], Any]) -> None:
    """Each row's ``target`` = ``convert(source)``, row by row (pipelines are few)."""
    pipelines = sa.table('pipelines', sa.column('id', sa.Uuid()), source, target)
    bind = op.get_bind()
    rows = bind.execute(sa.select(pipelines.c.id, source).where(source.is_not(None))).all()
    for pipeline_id, value in rows:
        bind.execute(pipelines.update().where(pipelines.c.id == pipeline_id).values({target.name: convert(value)}))


def _to_spec(cron: str) -> dict[str, str]:
    return {'cron': cron, 'timezone': 'UTC'}


def _to_cron(spec: dict[str, str]) -> str:
    return str(spec.get('cron', ''))[:128]


def upgrade() -> None:
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('catchup', sa.String(length=8), server_default='last', nullable=False))
        batch_op.add_column(sa.Column('ticks_from', tidemark.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('schedule_spec', JSON, nullable=True))
    _copy(sa.column('schedule', sa.String()), sa.column('schedule_spec', JSON), _to_spec)
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.drop_column('schedule')
        batch_op.alter_column('schedule_spec', new_column_name='schedule', existing_type=JSON, existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('schedule_cron', sa.VARCHAR(length=128), nullable=True))
    _copy(sa.column('schedule', JSON), sa.column('schedule_cron', sa.String()), _to_cron)
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.drop_column('schedule')
        batch_op.alter_column('schedule_cron', new_column_name='schedule', existing_type=sa.VARCHAR(length=128),
                              existing_nullable=True)
        batch_op.drop_column('ticks_from')
        batch_op.drop_column('catchup')
