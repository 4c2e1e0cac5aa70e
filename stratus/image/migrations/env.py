from stratus.core.db import run_migrations
from stratus.image.models import Base

run_migrations(Base.metadata)
