"""Migrations run as the owner role of Memora's schema (migration 0007), once there is one.

Objects a migration creates belong to whoever creates them; the owner role owns Memora's objects so that the
service's login role (a member of it) and later migrations, run by any member, can alter them. A superuser, or the
role that created the owner, switches to it for the rest of the migration's transaction (SET LOCAL ROLE); a user
who is not a member migrates as itself, as before 0007.
"""

from __future__ import annotations

from sqlalchemy import Executable

from memora_migrations.files import ddl

OWNER_KEY = "sql_role_owner"


def become_owner(schema: str) -> Executable:
    """SET LOCAL ROLE to the owner that SCHEMA's meta names, if any and if the current user may."""
    # The schema name is a checked identifier ([a-z0-9_], database.check_schema), so it can be spelled in the text.
    return ddl(
        f"""
        DO $$
        DECLARE
            owner text;
        BEGIN
            IF to_regclass('"{schema}".meta') IS NULL THEN
                RETURN;
            END IF;
            owner := (SELECT value FROM "{schema}".meta WHERE key = '{OWNER_KEY}');
            IF owner IS NOT NULL AND EXISTS (SELECT FROM pg_roles WHERE rolname = owner)
               -- From PostgreSQL 16 membership may come without SET (a CREATEROLE creator's ADMIN alone).
               AND (CASE WHEN current_setting('server_version_num')::int >= 160000
                         THEN pg_has_role(current_user, owner, 'SET')
                         ELSE pg_has_role(current_user, owner, 'MEMBER') END) THEN
                EXECUTE format('SET LOCAL ROLE %I', owner);
            END IF;
        END
        $$
        """
    )
