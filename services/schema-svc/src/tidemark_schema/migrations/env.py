from tidemark.db.alembic_env import run_migrations
from tidemark_schema.models import Base

run_migrations(Base.metadata)
