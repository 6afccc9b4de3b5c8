"""SQL that tests write as psql users write it (naming memora.<object>), for the schema the suite runs in.

`MEMORA_DB_SCHEMA=ml make pytest` builds the test database in schema `ml`; these helpers rewrite a test's own
statements as the application rewrites its (memora_migrations.files.for_schema), so the same test proves the same
thing in any schema. Tests marked `memora_schema` are about schema `memora` itself and skip the rewrite.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

from app.config import Settings
from memora_migrations.files import for_schema

SCHEMA = Settings().db_schema


def q(statement: str) -> str:
    """STATEMENT for the schema under test."""
    return for_schema(statement, SCHEMA)


def sql(statement: str) -> TextClause:
    """STATEMENT for the schema under test, as SQLAlchemy text() with :name parameters."""
    return text(q(statement))
