"""Which database and which schema a migration run is for.

Named, in this order, by: what memora_migrations.upgrade() and friends pass in (Alembic config attributes `url`,
`connection`, `schema`); `alembic -x url=... -x schema=...`; MEMORA_DATABASE_URL and MEMORA_DB_SCHEMA. A run that
names no database is refused: the `memora` command's default, an embedded server in the current directory, is for
`memora db upgrade`, which starts that server and passes its URL in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from alembic.config import Config
from sqlalchemy import Connection

from memora_migrations.errors import MigrationError
from memora_migrations.files import DEFAULT_SCHEMA

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

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


def check_schema(name: str) -> str:
    """NAME if it is a plain lower-case SQL identifier (it is spliced into SQL text and file contents)."""
    if not _IDENTIFIER.match(name):
        raise MigrationError(f"schema {name!r}: must be a lower-case SQL identifier (letters, digits, underscore)")
    return name


def schema_from_environment(environ: Mapping[str, str] | None = None) -> str:
    """MEMORA_DB_SCHEMA, else memora."""
    return check_schema((os.environ if environ is None else environ).get("MEMORA_DB_SCHEMA") or DEFAULT_SCHEMA)


def sqlalchemy_url(url: str) -> str:
    """The URL people copy from psql (postgresql://...) with the driver Memora uses, psycopg 3."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("postgresql+psycopg://"):
        return url
    raise MigrationError("the database URL must be a postgresql:// URL")


def resolve(config: Config, x_arguments: Mapping[str, str], *, online: bool) -> Target:
    """The target of this run; online, refuse one that names no database."""
    environ = os.environ
    schema = config.attributes.get("schema") or x_arguments.get("schema")
    target = Target(schema=check_schema(schema) if schema else schema_from_environment(environ))
    connection = config.attributes.get("connection")
    if connection is not None:
        return Target(target.schema, connection=connection)
    url = config.attributes.get("url") or x_arguments.get("url") or environ.get("MEMORA_DATABASE_URL")
    if url:
        return Target(target.schema, url=sqlalchemy_url(str(url)))
    if online:
        raise MigrationError(NO_DATABASE)
    return target
