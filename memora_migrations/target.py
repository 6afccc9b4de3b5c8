"""Which database and which schema a migration run is for.

Named, in this order, by: what memora_migrations.upgrade() and friends pass in (Alembic config attributes `url`,
`connection`, `schema`); `alembic -x url=... -x schema=...`; MEMORA_DATABASE_URL and MEMORA_DB_SCHEMA. A run that
names no database is refused: the `memora` command's default, an embedded server in the current directory, is for
`memora db upgrade`, which starts that server and passes its URL in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from alembic.config import Config
from sqlalchemy import Connection

from memora_migrations import database
from memora_migrations.errors import MigrationError
from memora_migrations.files import DEFAULT_SCHEMA

NO_DATABASE = (
    "Memora's migrations need to be told which database to migrate: run alembic with "
    "-x url=postgresql://user:password@host:5432/dbname, or set MEMORA_DATABASE_URL, or call "
    "memora_migrations.upgrade(url_or_connection). To migrate Memora's embedded server, run `memora db upgrade`."
)


@dataclass(frozen=True)
class Target:
    """The schema to migrate, and the database: a connection to use, else a URL to connect to (None offline)."""

    schema: str
    url: str | None = None
    connection: Connection | None = None


def valid_schema(name: str) -> str:
    """NAME, if it is a schema name Memora can use (database.check_schema), else a MigrationError."""
    try:
        return database.check_schema(name)
    except ValueError as exc:
        raise MigrationError(str(exc)) from None


def valid_url(url: str) -> str:
    """URL with psycopg 3 as its driver (database.sqlalchemy_url), else a MigrationError."""
    try:
        return database.sqlalchemy_url(url)
    except ValueError as exc:
        raise MigrationError(str(exc)) from None


def schema_from_environment(environ: Mapping[str, str] | None = None) -> str:
    """MEMORA_DB_SCHEMA, else memora."""
    return valid_schema((os.environ if environ is None else environ).get("MEMORA_DB_SCHEMA") or DEFAULT_SCHEMA)


def resolve(config: Config, x_arguments: Mapping[str, str], *, online: bool) -> Target:
    """The target of this run; online, refuse one that names no database."""
    environ = os.environ
    schema = config.attributes.get("schema") or x_arguments.get("schema")
    target = Target(schema=valid_schema(schema) if schema else schema_from_environment(environ))
    connection = config.attributes.get("connection")
    if connection is not None:
        return Target(target.schema, connection=connection)
    url = config.attributes.get("url") or x_arguments.get("url") or environ.get("MEMORA_DATABASE_URL")
    if url:
        return Target(target.schema, url=valid_url(str(url)))
    if online:
        raise MigrationError(NO_DATABASE)
    return target
