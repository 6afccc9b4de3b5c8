"""What the migration tests share: schema dumps, SQL on a libpq URL, psql, and migrating by libpq URL."""

from __future__ import annotations

import re
import subprocess

import psycopg
from alembic.script import ScriptDirectory

import memora_migrations
from app.db.embedded import bin_dir

HEAD = memora_migrations.head_revision()
# Oldest first.
REVISIONS = [
    script.revision
    for script in reversed(list(ScriptDirectory(str(memora_migrations.MIGRATIONS_DIR)).walk_revisions()))
]


def dump(url: str, *options: str) -> str:
    """pg_dump --schema-only of the database (or of the schemas named in options), for comparisons.

    Memora's SQL roles are named after the database (migration 0007): in the dump they are <owner>, <writer> and
    <reader>, so that two databases migrated alike compare equal.
    """
    result = subprocess.run(
        [str(bin_dir() / "pg_dump"), "--schema-only", "--no-owner", "--restrict-key=memora", *options, url],
        check=True,
        capture_output=True,
        text=True,
    )
    text = result.stdout
    for name, kind in fetch(url, MEMORA_ROLES):
        text = re.sub(rf"(?<![\w$]){re.escape(str(name))}(?![\w$])", f"<{kind}>", text)
    return text


# Every role migration 0007 made in this cluster, longest names first (one may be another's prefix).
MEMORA_ROLES = """
SELECT rolname, split_part(shobj_description(oid, 'pg_authid'), ' ', 2) FROM pg_roles
WHERE shobj_description(oid, 'pg_authid') LIKE 'Memora % of schema % in database %'
ORDER BY length(rolname) DESC
"""


def memora_schema(url: str) -> str:
    return dump(url, "--schema=memora")


def run_sql(url: str, statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statements)


def fetch(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def psql(url: str, script: str) -> None:
    """Run SCRIPT as a psql user would, stopping at the first error."""
    command = [str(bin_dir() / "psql"), "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--quiet", url]
    subprocess.run(command, input=script, check=True, capture_output=True, text=True)


def upgrade(url: str, revision: str = "head", schema: str = "memora") -> None:
    memora_migrations.upgrade(url, revision, schema=schema)


def downgrade(url: str, revision: str, schema: str = "memora") -> None:
    memora_migrations.downgrade(url, revision, schema=schema)
