from tidemark.db.alembic_env import run_migrations
from tidemark_connector.models import Base

run_migrations(Base.metadata)
