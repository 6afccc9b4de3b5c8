"""Memora's migrations for the service: Settings, and the embedded server's URL, turned into calls of
memora_migrations (which the CLI, `memora serve` and the tests use through here).

memora_migrations brings Alembic and SQLAlchemy, which take a third of a second to import: every `memora db`
command imports this module, so they are imported where they are used.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from app.config import Settings
from app.db.engine import admin_url, database_url
from app.errors import DatabaseUnavailableError

if TYPE_CHECKING:
    from sqlalchemy import Connection


def upgrade(settings: Settings, revision: str = "head", url: str | None = None) -> None:
    """Upgrade settings.db_schema to REVISION in URL, else in settings' database (starting the embedded server).

    The embedded server is migrated by its superuser (the first revision creates the vector extension, 0007 the
    group roles), and its service role then joins the owner role (app/db/service_role.py).
    """
    _run("upgrade", url or admin_url(settings), revision, settings.db_schema)
    if url is None and settings.embedded:
        database_url(settings)


def downgrade(settings: Settings, revision: str, url: str | None = None) -> None:
    _run("downgrade", url or admin_url(settings), revision, settings.db_schema)


@cache
def head_revision() -> str | None:
    """The newest revision (read once: reading the scripts takes ~8 ms, and GET /healthz asks)."""
    import memora_migrations

    return memora_migrations.head_revision()


def current_revision(url: str, schema: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    import memora_migrations

    return memora_migrations.current_revision(url, schema=schema)


def current_revision_of(conn: Connection, schema: str) -> str | None:
    """The same on an open connection (cheap enough for every health check)."""
    import memora_migrations

    return memora_migrations.current_revision(conn, schema=schema)


def sql_script(settings: Settings, start: str, end: str, *, downgrade: bool = False) -> str:
    """The SQL that migrating from START to END would run (Alembic's offline mode), for psql users."""
    import memora_migrations

    return memora_migrations.sql_script(start, end, schema=settings.db_schema, downgrade=downgrade)


def _run(command: str, url: str, revision: str, schema: str) -> None:
    """memora_migrations' COMMAND, with its refusals (a server too old, without pgvector) as the service's error:
    one line in the CLI, not a traceback."""
    import memora_migrations

    try:
        getattr(memora_migrations, command)(url, revision, schema=schema)
    except memora_migrations.MigrationError as exc:
        raise DatabaseUnavailableError(str(exc)) from exc
