"""The rules a database URL and a schema name follow, shared with Memora's settings (app/config.py). Light to
import: nothing here loads SQLAlchemy or Alembic. A broken rule is a ValueError (pydantic's validators take it as
it is; the migrations make it a MigrationError)."""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_DRIVERS = ("postgresql+psycopg2://", "postgresql://", "postgres://")


def sqlalchemy_url(url: str) -> str:
    """The URL people copy from psql (postgresql://...) with the driver Memora uses, psycopg 3."""
    for prefix in _DRIVERS:
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("postgresql+psycopg://"):
        return url
    raise ValueError("the database URL must be a postgresql:// URL")


def check_schema(name: str) -> str:
    """NAME if it is a plain lower-case SQL identifier (it is spliced into SQL text and file contents)."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"schema {name!r}: must be a lower-case SQL identifier (letters, digits, underscore)")
    return name
