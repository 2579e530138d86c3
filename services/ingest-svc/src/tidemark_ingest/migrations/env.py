from tidemark.db.alembic_env import run_migrations
from tidemark_ingest.models import Base

run_migrations(Base.metadata)
