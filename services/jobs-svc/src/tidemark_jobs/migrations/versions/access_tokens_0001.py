"""access tokens: this service's projection of the token.created and token.revoked events

Revision ID: access_tokens_0001
Revises: 0003_maint
Create Date: 2026-12-06 03:40:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidemark.db.types

revision: str = 'access_tokens_0001'
down_revision: str | None = '0003_maint'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('access_tokens',
    sa.Column('token_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', tidemark.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token_id'),
    sa.UniqueConstraint('digest')
    )


def downgrade() -> None:
    op.drop_table('access_tokens')
