"""The host's env.py: its own models, every schema compared, Memora's schema left to Memora."""

from __future__ import annotations

import os

from alembic import context
from app.models import Base
from sqlalchemy import create_engine, pool

import memora_migrations

filters = {"include_name": memora_migrations.include_name, "include_object": memora_migrations.include_object}
if os.environ.get("HOST_WITHOUT_MEMORA_FILTERS"):  # the test's control: what the filters keep out
    filters = {}

engine = create_engine(os.environ["HOST_DATABASE_URL"], poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, include_schemas=True, **filters)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
