"""Running Memora's migrations from Python: the CLI, `memora serve` and the tests call these.

Alembic, SQLAlchemy and the models are imported where they are used: every `memora` command imports this module,
`memora --help` too, and they take a third of a second.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from contextlib import redirect_stdout
from functools import cache
from typing import TYPE_CHECKING

from app.config import Settings
from app.resources import ALEMBIC_INI, MIGRATIONS_DIR

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection

VERSION_TABLE = "alembic_version"
_PARTITION = re.compile(r"^embedding_c\d+$")
_DATASET_INDEX = re.compile(r"^ix_example_embedding_d\d+$")


def include_name(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """What autogenerate compares: Memora's schema, less the version table, per-collection partitions and the
    per-dataset embedding indexes that deduplication creates (app/training/dedup.py)."""
    from app.db.models import SCHEMA

    if type_ == "schema":
        return name == SCHEMA
    if type_ == "table":
        return name != VERSION_TABLE and not _PARTITION.match(name or "")
    if type_ == "index":
        return not _DATASET_INDEX.match(name or "")
    return True


def alembic_config(settings: Settings, url: str | None = None, connection: Connection | None = None) -> Config:
    """Alembic's Config for Memora's migrations, targeting settings.db_schema."""
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["settings"] = settings
    if url is not None:
        config.attributes["url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(settings: Settings, revision: str = "head", url: str | None = None) -> None:
    from alembic import command

    command.upgrade(alembic_config(settings, url), revision)


def downgrade(settings: Settings, revision: str, url: str | None = None) -> None:
    from alembic import command

    command.downgrade(alembic_config(settings, url), revision)


@cache
def head_revision() -> str | None:
    """The newest revision in migrations/ (read once: reading the scripts takes ~8 ms, and GET /healthz asks)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(url: str, schema: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return current_revision_of(conn, schema)
    finally:
        engine.dispose()


def current_revision_of(conn: Connection, schema: str) -> str | None:
    """Read SCHEMA.alembic_version directly (cheap enough for every health check)."""
    from sqlalchemy import Column, MetaData, String, Table, func, select

    if conn.execute(select(func.to_regclass(f"{schema}.{VERSION_TABLE}"))).scalar() is None:
        return None
    table = Table(VERSION_TABLE, MetaData(), Column("version_num", String), schema=schema)
    return conn.execute(select(table.c.version_num)).scalar()


def sql_script(settings: Settings, start: str, end: str, *, downgrade: bool = False) -> str:
    """The SQL that migrating from START to END would run (Alembic's offline mode), for psql users."""
    from alembic import command

    config = alembic_config(settings)
    buffer = io.StringIO()
    config.output_buffer = buffer
    run = command.downgrade if downgrade else command.upgrade
    with redirect_stdout(buffer):
        run(config, f"{start}:{end}", sql=True)
    return buffer.getvalue()
