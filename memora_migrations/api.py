"""Running Memora's migrations from Python: a host's env.py or revision, a deploy script, the `memora` command."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout

import alembic.context
import alembic.op
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, MetaData, String, Table, create_engine, func, select
from sqlalchemy.pool import NullPool

from memora_migrations.files import ALEMBIC_INI, MIGRATIONS_DIR
from memora_migrations.filters import VERSION_TABLE
from memora_migrations.target import schema_from_environment, valid_schema, valid_url

Database = str | Connection


def config(database: Database | None = None, *, schema: str | None = None) -> Config:
    """Alembic's Config for Memora's migrations: DATABASE is a URL or a connection (None: offline, or -x url)."""
    alembic_config = Config(str(ALEMBIC_INI))
    alembic_config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if schema is not None:
        alembic_config.attributes["schema"] = valid_schema(schema)
    if isinstance(database, Connection):
        alembic_config.attributes["connection"] = database
    elif database is not None:
        alembic_config.attributes["url"] = valid_url(database)
    return alembic_config


def upgrade(database: Database, revision: str = "head", *, schema: str | None = None) -> None:
    """Upgrade Memora's schema (SCHEMA, else MEMORA_DB_SCHEMA, else memora) in DATABASE to REVISION.

    DATABASE is a URL, or a connection: a host revision passes op.get_bind(), and Memora's migrations then run in
    the host's transaction.
    """
    with _callers_alembic_kept():
        command.upgrade(config(database, schema=schema), revision)


def downgrade(database: Database, revision: str, *, schema: str | None = None) -> None:
    """Downgrade Memora's schema in DATABASE to REVISION; `base` removes every object of Memora's."""
    with _callers_alembic_kept():
        command.downgrade(config(database, schema=schema), revision)


def sql_script(start: str = "base", end: str = "head", *, schema: str | None = None, downgrade: bool = False) -> str:
    """The SQL that migrating from START to END runs (Alembic's offline mode), for people who apply it with psql."""
    alembic_config = config(schema=schema)
    buffer = io.StringIO()
    alembic_config.output_buffer = buffer
    run = command.downgrade if downgrade else command.upgrade
    with _callers_alembic_kept(), redirect_stdout(buffer):
        run(alembic_config, f"{start}:{end}", sql=True)
    return buffer.getvalue()


def head_revision() -> str | None:
    """The newest revision of Memora's migrations."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(database: Database, *, schema: str | None = None) -> str | None:
    """The revision DATABASE is at, or None before the first migration (read from SCHEMA.alembic_version)."""
    schema = valid_schema(schema) if schema else schema_from_environment()
    if isinstance(database, Connection):
        return _current_revision(database, schema)
    engine = create_engine(valid_url(database), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return _current_revision(conn, schema)
    finally:
        engine.dispose()


def _current_revision(conn: Connection, schema: str) -> str | None:
    if conn.execute(select(func.to_regclass(f'"{schema}".{VERSION_TABLE}'))).scalar() is None:
        return None
    table = Table(VERSION_TABLE, MetaData(), Column("version_num", String), schema=schema)
    revision: str | None = conn.execute(select(table.c.version_num)).scalar()
    return revision


@contextmanager
def _callers_alembic_kept() -> Iterator[None]:
    """Let Alembic run inside a running Alembic: a host revision that calls upgrade() goes on using `op` after it.

    alembic.op and alembic.context are module-level proxies of the running migration; a nested run installs its own
    and, when it ends, removes them, leaving the caller's revision with none. Put the caller's back.
    """
    saved = [getattr(module, "_proxy", None) for module in (alembic.context, alembic.op)]
    try:
        yield
    finally:
        for proxy in saved:
            if proxy is not None:
                proxy._install_proxy()
