"""Helpers for revision files: the schema being migrated, and the incremental SQL files a revision applies.

A revision sees none of Memora's functions or triggers (memora_migrations.idempotent drops them before the
revisions run and applies them after), so its data migrations spell out their SQL, frozen with the revision.
"""

from __future__ import annotations

from alembic import op

from memora_migrations.files import INCREMENTAL_DIR, ddl, read


def schema() -> str:
    """The schema this migration run targets (MEMORA_DB_SCHEMA); the version table lives there too."""
    name = op.get_context().version_table_schema
    assert isinstance(name, str), "migrations/env.py always sets version_table_schema"
    return name


def qualified(name: str) -> str:
    """NAME in the target schema, quoted as needed, for the few statements written as SQL text."""
    preparer = op.get_context().dialect.identifier_preparer
    return f"{preparer.quote_schema(schema())}.{preparer.quote(name)}"


def apply_incremental(name: str) -> None:
    """Run sql/incremental/NAME in the target schema: once, from the revision whose number starts NAME."""
    op.execute(ddl(read(INCREMENTAL_DIR / name, schema())))
