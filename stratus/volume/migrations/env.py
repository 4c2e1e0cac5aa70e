from stratus.core.db import run_migrations
from stratus.volume.models import Base

run_migrations(Base.metadata)
