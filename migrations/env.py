"""Alembic environment for Memora: every object, the version table included, lives in Memora's schema.

So the migrations can run inside a database that has its own tables and its own Alembic history: they read and
write only MEMORA_DB_SCHEMA.alembic_version, and never public.alembic_version.
"""

from __future__ import annotations

import psycopg
from alembic import context
from sqlalchemy import Connection, MetaData, Table, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateSchema, DropSchema, DropTable

from app.config import Settings, get_settings
from app.db.engine import database_url, make_engine
from app.db.migrate import VERSION_TABLE, include_name
from app.db.models import Base
from app.db.server import check_requirements, server_info

config = context.config
# `memora db ...` hands its settings over; plain `alembic` reads them from MEMORA_* variables.
settings: Settings = config.attributes.get("settings") or get_settings()
target_schema = settings.db_schema
# One migration at a time per database, whichever process starts it (key: "memora" in ASCII).
ADVISORY_LOCK_KEY = 0x6D656D6F7261


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        version_table_schema=target_schema,
        include_schemas=True,
        include_name=include_name,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Print the SQL (alembic upgrade --sql) for people who apply migrations with psql."""
    _configure(
        url=config.attributes.get("url") or "postgresql+psycopg://",
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.execute(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=ADVISORY_LOCK_KEY))
        context.execute(CreateSchema(target_schema, if_not_exists=True))
        context.run_migrations()
        if context.get_revision_argument() in (None, "base"):  # a downgrade to base; Alembic spells it None
            context.execute(DropTable(Table(VERSION_TABLE, MetaData(), schema=target_schema), if_exists=True))
            context.execute(DropSchema(target_schema, if_exists=True))


def run_migrations_online() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = config.attributes.get("url") or database_url(settings)
    engine = make_engine(settings, "migrate", url=url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            _migrate(conn)
    finally:
        engine.dispose()


def _migrate(conn: Connection) -> None:
    check_requirements(server_info(conn))
    conn.commit()
    with conn.begin():
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        conn.execute(CreateSchema(target_schema, if_not_exists=True))
        _configure(connection=conn)
        context.run_migrations()
        if not context.get_context().get_current_heads():
            _drop_leftovers(conn)


def _drop_leftovers(conn: Connection) -> None:
    """After a downgrade to base only the version table is left: remove it, and the schema unless it holds
    objects that are not ours."""
    Table(VERSION_TABLE, MetaData(), schema=target_schema).drop(conn, checkfirst=True)
    try:
        with conn.begin_nested():
            conn.execute(DropSchema(target_schema, if_exists=True))  # RESTRICT: never takes others' objects
    except DBAPIError as exc:
        if not isinstance(exc.orig, psycopg.errors.DependentObjectsStillExist):
            raise


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
