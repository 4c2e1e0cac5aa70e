from stratus.core.db import run_migrations
from stratus.network.models import Base

run_migrations(Base.metadata)
