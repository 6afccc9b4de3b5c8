"""Helpers for revision files: the schema being migrated and the SQL files a revision applies."""

from __future__ import annotations

from alembic import op

from app.db import sqlfiles


def schema() -> str:
    """The schema this migration run targets (MEMORA_DB_SCHEMA); the version table lives there too."""
    name = op.get_context().version_table_schema
    assert isinstance(name, str), "migrations/env.py always sets version_table_schema"
    return name


def apply_sql_file(name: str) -> None:
    """Run sql/functions/NAME in the target schema.

    Function bodies are checked when called, not when created, so a file may refer to objects a later revision
    adds (pg_dump restores functions the same way).
    """
    op.execute("SET LOCAL check_function_bodies = off")
    op.execute(sqlfiles.ddl(name, schema()))
    op.execute("SET LOCAL check_function_bodies = on")


def qualified(name: str) -> str:
    """NAME in the target schema, quoted as needed, for the few statements written as SQL text."""
    preparer = op.get_context().dialect.identifier_preparer
    return f"{preparer.quote_schema(schema())}.{preparer.quote(name)}"
