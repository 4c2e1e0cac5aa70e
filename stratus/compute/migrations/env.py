from stratus.core.db import run_migrations
from stratus.compute.models import Base

run_migrations(Base.metadata)
