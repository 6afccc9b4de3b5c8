"""The embedded server's service role: the API, the worker and the CLI log in as `memora_app`, not as the superuser.

The superuser (`postgres`, password in pg.password) only bootstraps: initdb, the database, migrations (the first
creates the vector extension, which only a superuser may; 0007 creates the group roles, which needs CREATEROLE,
and every object is then its owner role's) and this role. `memora_app` is a LOGIN role with no attribute
(NOSUPERUSER NOCREATEDB NOCREATEROLE), a member of the owner role of the schema it serves.

Why membership in the owner rather than SECURITY DEFINER functions: creating a collection creates a partition of
memora.embedding and its HNSW index, deleting one drops them, a dataset's deduplication builds an index on
memora.example, a re-embed truncates a partition: all of that needs ownership of the tables. SECURITY DEFINER
wrappers for each would be as powerful (they run as the owner), would put dynamic DDL behind functions that every
SQL user could try to call, and would have to follow every new DDL path of the service. The role boundary that
matters is elsewhere, and membership keeps it: the service cannot read or write other schemas or databases, read
server files, run programs (COPY ... PROGRAM), change server settings, create roles, databases or extensions.

Its password is kept in pg.app-password (0600) beside pg.password. A data directory from before this role existed
gets it at the first start; until its schema has an owner role (migration 0007, which `memora serve` applies when
it starts), the service goes on connecting as the superuser, as it did.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from app.db import host
from app.db.embedded import DATABASE, EmbeddedPostgres, EmbeddedServer

log = logging.getLogger(__name__)

APP_ROLE = "memora_app"
PASSWORD_FILE = "pg.app-password"


def password_path(embedded: EmbeddedPostgres) -> Path:
    return embedded.root / PASSWORD_FILE


def app_url(server: EmbeddedServer, password: str, database: str = DATABASE) -> str:
    return f"postgresql://{APP_ROLE}:{password}@127.0.0.1:{server.port}/{database}"


def ensure(embedded: EmbeddedPostgres, server: EmbeddedServer, schema: str) -> str | None:
    """The libpq URL of the service role, made (or mended) first; None while SCHEMA has no owner role to join."""
    import psycopg
    from psycopg import sql

    from app.db.sql_roles import group_roles, scram_verifier

    path = password_path(embedded)
    new_password = not path.exists()
    if new_password:
        host.write_private(path, secrets.token_urlsafe(24))  # first, so a crash after CREATE ROLE cannot lose it
    password = path.read_text().strip()
    with psycopg.connect(server.url(), autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone() is not None
        if not exists or new_password:
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                    sql.Identifier(APP_ROLE), sql.Literal(scram_verifier(password))
                )
            )
            log.info("%s the service role %s of the embedded server", "altered" if exists else "created", APP_ROLE)
        roles = group_roles(conn, schema)
        if roles is None:
            return None
        member = conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (APP_ROLE, roles.owner)).fetchone()
        if member != (True,):
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(roles.owner), sql.Identifier(APP_ROLE)))
            log.info("the service role %s joined %s, the owner of schema %s", APP_ROLE, roles.owner, schema)
    return app_url(server, password)


def password_of(embedded: EmbeddedPostgres, user: str | None) -> str | None:
    """The password USER logs in with to EMBEDDED's server, if it is the service role."""
    if user != APP_ROLE:
        return None
    try:
        return password_path(embedded).read_text().strip()
    except FileNotFoundError:
        return None
