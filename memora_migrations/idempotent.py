"""The idempotent layer: Memora's functions and triggers (sql/idempotent/), applied again by every migration run.

Tables and types are incremental: a revision makes them once, in its own code or from sql/incremental/, and never
changes afterwards. Functions and triggers belong to the code, not to a revision. Each file in sql/idempotent/ says
on its first line the revision whose schema it needs (`-- requires: 0002 (...)`), and, if a later revision changed
that schema so that another file took over, the revision it stops at (`-- requires: 0001 until 0009 (...)`: at 0001
to 0008). A run that moves the database (upgrade, downgrade, stamp) goes:

1. drop every function in Memora's schema, and every trigger that runs one on Memora's tables;
2. run the revisions, which so never meet a function or trigger of Memora (none can block a DROP TABLE, and none
   fires during a backfill);
3. apply, in the order of their names, the files whose revision the database is now at or past (and not yet at
   their `until`), and record a fingerprint of them in memora.meta.

So a database at any revision has the functions of this version of Memora that fit its schema, and no function
that the files no longer define. A run that moves nothing applies the files only when they differ from the
fingerprint (a new Memora whose functions changed without a new revision); otherwise it takes no lock but its
advisory one, which matters because every `memora serve` starts with one.

A function that something outside Memora depends on (a view of the host's over memora.search_text, say) is kept,
with a NOTICE; its file then replaces it in place, as CREATE OR REPLACE can while the signature stays.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Executable, MetaData, Table, Text, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from memora_migrations.errors import MigrationError
from memora_migrations.files import IDEMPOTENT_DIR, ddl, read

FINGERPRINT_KEY = "idempotent_sql_sha256"
_REQUIRES = re.compile(r"\A-- requires: (\w+)(?: until (\w+))?")


@dataclass(frozen=True)
class IdempotentFile:
    path: Path
    requires: str  # the revision whose schema the file is written for, and every later one
    until: str | None = None  # the first revision it is not for (another file's schema from there on)

    @property
    def name(self) -> str:
        return self.path.name


@cache
def idempotent_files() -> tuple[IdempotentFile, ...]:
    """The files of sql/idempotent/, in the order they apply."""
    files = []
    for path in sorted(IDEMPOTENT_DIR.glob("*.sql")):
        match = _REQUIRES.match(path.read_text())
        if match is None:
            raise MigrationError(
                f"{path}: the first line must be `-- requires: <revision> (...)` "
                "or `-- requires: <revision> until <revision> (...)`"
            )
        files.append(IdempotentFile(path, match.group(1), match.group(2)))
    return tuple(files)


def needed(script: ScriptDirectory, heads: Iterable[str]) -> list[IdempotentFile]:
    """The files a database at HEADS gets: those whose revision it is at or past, and whose `until` it is not."""
    reached = {revision.revision for head in heads for revision in script.iterate_revisions(head, "base")}
    return [file for file in idempotent_files() if file.requires in reached and file.until not in reached]


def fingerprint(files: Iterable[IdempotentFile], schema: str) -> str:
    """SHA-256 of the files' names and texts as applied to SCHEMA."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}\0{read(file.path, schema)}\0".encode())
    return digest.hexdigest()


def _meta(schema: str) -> Table:
    return Table("meta", MetaData(), Column("key", Text, primary_key=True), Column("value", Text), schema=schema)


def applied_fingerprint(conn: Connection, schema: str) -> str | None:
    """The fingerprint the last run recorded, if any."""
    if conn.execute(select(func.to_regclass(f'"{schema}".meta'))).scalar() is None:
        return None
    meta = _meta(schema)
    value: str | None = conn.execute(select(meta.c.value).where(meta.c.key == FINGERPRINT_KEY)).scalar()
    return value


def drop(schema: str) -> Executable:
    """Drop the idempotent layer: every trigger on Memora's tables that runs a function of Memora's, then every
    function in Memora's schema (not those of an extension installed there, nor those others depend on)."""
    # The schema name is a checked identifier ([a-z0-9_], database.check_schema), so it can be spelled in the text.
    return ddl(
        f"""
        DO $$
        DECLARE
            item record;
        BEGIN
            FOR item IN
                SELECT t.tgname, t.tgrelid::regclass AS rel
                FROM pg_trigger t
                JOIN pg_class c ON c.oid = t.tgrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_proc p ON p.oid = t.tgfoid
                WHERE n.nspname = '{schema}' AND p.pronamespace = n.oid AND NOT t.tgisinternal AND t.tgparentid = 0
            LOOP
                EXECUTE format('DROP TRIGGER %I ON %s', item.tgname, item.rel);
            END LOOP;
            FOR item IN
                SELECT p.oid::regprocedure AS routine
                FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = '{schema}' AND p.prokind IN ('f', 'p')
                  AND NOT EXISTS (SELECT FROM pg_depend d
                                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
            LOOP
                BEGIN
                    EXECUTE format('DROP ROUTINE %s', item.routine);
                EXCEPTION WHEN dependent_objects_still_exist THEN
                    RAISE NOTICE 'keeping %: objects outside Memora depend on it', item.routine;
                END;
            END LOOP;
        END
        $$
        """
    )


def apply(files: list[IdempotentFile], schema: str) -> list[Executable]:
    """The statements that apply FILES to SCHEMA and record their fingerprint (none at base, where meta is gone)."""
    if not files:
        return []
    meta = _meta(schema)
    record = pg_insert(meta).values(key=FINGERPRINT_KEY, value=fingerprint(files, schema))
    return [
        # Function bodies are checked when called, not when created, so a file may use a later file's functions
        # (pg_dump restores functions the same way).
        text("SET LOCAL check_function_bodies = off"),
        *(ddl(read(file.path, schema)) for file in files),
        text("SET LOCAL check_function_bodies = on"),
        record.on_conflict_do_update(index_elements=[meta.c.key], set_={"value": record.excluded.value}),
    ]
