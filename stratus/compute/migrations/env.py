from stratus.compute.models import Base
from stratus.core.db import run_migrations

run_migrations(Base.metadata)
