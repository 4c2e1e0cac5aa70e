from stratus.core.db import run_migrations
from stratus.identity.models import Base

run_migrations(Base.metadata)
