"""SQL roles: three group roles (NOLOGIN) for the people and services that use Memora's schema from SQL.

    <base>_reader   USAGE on the schema, SELECT on its tables (not api_key, not audit_event), EXECUTE on the search
                    and batch functions (sql/idempotent/012-privileges.sql, re-applied with the functions)
    <base>_writer   reader + INSERT/UPDATE/DELETE on document and example (the triggers and the worker do the rest)
    <base>_owner    owns every object of the schema; migrations run as it (memora_migrations.roles)

Roles are cluster-wide and databases are not, so <base> names the schema and the database: `memora` when the
database is called like the schema (the embedded server, docker-compose), else `<schema>_<database>`, with a hash in
place of a database name that is long or not a plain identifier, or that another install already uses. The names
are kept in meta (sql_role_reader, sql_role_writer, sql_role_owner) for the code and later migrations; each role is
marked with a comment naming its schema and database, so a role of the same name that is not this install's is
never taken over. A migrating user without CREATEROLE gets a NOTICE, meta records sql_roles = skipped, and nothing
else changes: the migration of an existing stack never fails for want of it. The downgrade gives the objects back to
the migrating user, revokes every grant of the three roles in this database, and drops the roles this migration
created unless another database still depends on them (a database cloned from this one with CREATE DATABASE ...
TEMPLATE shares them). docs/security.md, "PostgreSQL roles", says how to use them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

from memora_migrations.files import ddl
from memora_migrations.ops import qualified, schema

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What a reader may not see: the keys' hashes and the trail of the REST API (admins read them through the API).
PRIVATE_TABLES = ("api_key", "audit_event")
WRITTEN_TABLES = ("document", "example")


def upgrade() -> None:
    s = schema()
    meta = qualified("meta")
    private = ", ".join(qualified(name) for name in PRIVATE_TABLES)
    written = ", ".join(qualified(name) for name in WRITTEN_TABLES)
    # The schema name is a checked identifier ([a-z0-9_], memora_migrations.database.check_schema).
    op.execute(
        ddl(
            f"""
        DO $roles$
        DECLARE
            db text := current_database();
            kinds text[] := ARRAY['owner', 'writer', 'reader'];
            kind text;
            base text;
            candidate text;
            role_name text;
            names jsonb := '{{}}';
            created text[] := '{{}}';
            item record;
            privileged boolean;
        BEGIN
            SELECT rolsuper, rolcreaterole INTO STRICT item FROM pg_roles WHERE rolname = current_user;
            privileged := item.rolsuper;
            IF NOT (item.rolsuper OR item.rolcreaterole) THEN
                RAISE NOTICE 'Memora''s SQL roles were not created: % may not create roles (CREATEROLE). '
                    'Run `memora db upgrade` once as a role that may, after `memora db downgrade 0006`, to add them.',
                    current_user;
                INSERT INTO {meta} (key, value) VALUES ('sql_roles', 'skipped');
                RETURN;
            END IF;

            -- A base whose three names are free, or marked as this install's; the plain one first.
            FOREACH candidate IN ARRAY ARRAY[
                CASE WHEN db = '{s}' THEN '{s}' WHEN db ~ '^[a-z0-9_]+$' THEN '{s}_' || db END,
                left('{s}', 46) || '_' || left(md5(db || '.{s}'), 9)
            ] LOOP
                CONTINUE WHEN candidate IS NULL OR length(candidate) > 56;
                IF NOT EXISTS (
                    SELECT FROM pg_roles r, unnest(kinds) k
                    WHERE r.rolname = candidate || '_' || k
                      AND shobj_description(r.oid, 'pg_authid') IS DISTINCT FROM
                          format('Memora %s of schema %s in database %s', k, '{s}', db)
                ) THEN
                    base := candidate;
                    EXIT;
                END IF;
            END LOOP;
            IF base IS NULL THEN
                RAISE EXCEPTION 'cannot name Memora''s SQL roles: roles %_owner and the like exist and are not this '
                    'install''s', left('{s}', 46) || '_' || left(md5(db || '.{s}'), 9)
                    USING HINT = 'Rename or drop those roles, or set the comment Memora reads on them.';
            END IF;

            FOREACH kind IN ARRAY kinds LOOP
                role_name := base || '_' || kind;
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
                    EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
                    EXECUTE format('COMMENT ON ROLE %I IS %L', role_name,
                                   format('Memora %s of schema %s in database %s', kind, '{s}', db));
                    created := created || kind;
                END IF;
                names := names || jsonb_build_object(kind, role_name);
            END LOOP;
            INSERT INTO {meta} (key, value)
            SELECT 'sql_role_' || key, value FROM jsonb_each_text(names)
            UNION ALL SELECT 'sql_roles', 'created:' || array_to_string(created, ',');

            -- A non-superuser creator (CREATEROLE) holds ADMIN on what it created but, from PostgreSQL 16, neither
            -- SET nor INHERIT: it grants itself membership, to hand objects over and SET ROLE to the owner.
            IF NOT privileged AND NOT (CASE WHEN current_setting('server_version_num')::int >= 160000
                                            THEN pg_has_role(current_user, names->>'owner', 'SET')
                                            ELSE pg_has_role(current_user, names->>'owner', 'MEMBER') END) THEN
                EXECUTE format('GRANT %I TO %I', names->>'owner', current_user);
            END IF;
            EXECUTE format('GRANT %I TO %I', names->>'reader', names->>'writer');

            -- The owner owns every object of the schema but the schema itself (giving it away would need CREATE on
            -- the database for the owner); functions come later, from the idempotent layer, created as the owner.
            EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO %I', '{s}', names->>'owner');
            FOR item IN
                SELECT c.oid::regclass AS rel,
                       CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                      WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                                      ELSE 'TABLE' END AS kind
                FROM pg_class c
                WHERE c.relnamespace = '{s}'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                  AND NOT EXISTS (SELECT FROM pg_depend d
                                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                    AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
            LOOP
                EXECUTE format('ALTER %s %s OWNER TO %I', item.kind, item.rel, names->>'owner');
            END LOOP;
            FOR item IN
                SELECT t.oid::regtype AS type
                FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
                WHERE t.typnamespace = '{s}'::regnamespace
                  AND (t.typtype IN ('e', 'd', 'r', 'm') OR (t.typtype = 'c' AND c.relkind = 'c'))
                  AND NOT EXISTS (SELECT FROM pg_depend d
                                  WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
            LOOP
                EXECUTE format('ALTER TYPE %s OWNER TO %I', item.type, names->>'owner');
            END LOOP;
            FOR item IN
                SELECT p.oid::regprocedure AS routine
                FROM pg_proc p
                WHERE p.pronamespace = '{s}'::regnamespace AND p.prokind IN ('f', 'p')
                  AND NOT EXISTS (SELECT FROM pg_depend d
                                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
            LOOP
                EXECUTE format('ALTER ROUTINE %s OWNER TO %I', item.routine, names->>'owner');
            END LOOP;

            EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', '{s}', names->>'reader');
            -- pgvector's types, wherever the database keeps the extension (a schema of the host's choice), unless
            -- PUBLIC may use that schema already (public, by default).
            FOR item IN
                SELECT e.extnamespace::regnamespace AS home FROM pg_extension e
                WHERE e.extname = 'vector' AND NOT has_schema_privilege(names->>'reader', e.extnamespace, 'USAGE')
            LOOP
                EXECUTE format('GRANT USAGE ON SCHEMA %s TO %I, %I', item.home, names->>'owner', names->>'reader');
            END LOOP;
            EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', '{s}', names->>'reader');
            EXECUTE format('REVOKE SELECT ON {private} FROM %I', names->>'reader');
            EXECUTE format('GRANT INSERT, UPDATE, DELETE ON {written} TO %I', names->>'writer');
            -- An example written without seq takes a block of numbers from its dataset's next_seq (the
            -- example_before_insert trigger runs as the writer).
            EXECUTE format('GRANT UPDATE (next_seq) ON {qualified("dataset")} TO %I', names->>'writer');
            -- Tables of later revisions, and the embedding partition of each new collection, are the owner's.
            EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON TABLES TO %I',
                           names->>'owner', '{s}', names->>'reader');
            -- What runs after this revision (later revisions, the idempotent layer) creates objects as the owner.
            EXECUTE format('SET LOCAL ROLE %I', names->>'owner');
        END
        $roles$
        """
        )
    )


def downgrade() -> None:
    s = schema()
    meta = qualified("meta")
    op.execute("SET LOCAL ROLE NONE")
    # The reader's and writer's grants are revoked one by one: DROP OWNED BY would need their privileges, which a
    # migrating user with CREATEROLE (ADMIN on them, PostgreSQL 16) does not have.
    op.execute(
        ddl(
            f"""
        DO $roles$
        DECLARE
            names jsonb := (SELECT jsonb_object_agg(substr(key, 10), value) FROM {meta} WHERE key LIKE 'sql\\_role\\_%');
            created text := (SELECT value FROM {meta} WHERE key = 'sql_roles');
            kind text;
            home regnamespace;
        BEGIN
            IF names IS NOT NULL THEN
                IF EXISTS (SELECT FROM pg_roles WHERE rolname = names->>'owner') THEN
                    EXECUTE format('REASSIGN OWNED BY %I TO %I', names->>'owner', current_user);
                    EXECUTE format('DROP OWNED BY %I', names->>'owner');  -- its grants and default privileges here
                END IF;
                FOREACH kind IN ARRAY ARRAY['reader', 'writer'] LOOP
                    CONTINUE WHEN NOT EXISTS (SELECT FROM pg_roles WHERE rolname = names->>kind);
                    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', '{s}', names->>kind);
                    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM %I', '{s}', names->>kind);
                    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', '{s}', names->>kind);
                    FOR home IN
                        SELECT n.oid FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace,
                             aclexplode(n.nspacl) a
                        WHERE e.extname = 'vector' AND a.grantee = (names->>kind)::regrole
                    LOOP
                        EXECUTE format('REVOKE USAGE ON SCHEMA %s FROM %I', home, names->>kind);
                    END LOOP;
                END LOOP;
                FOREACH kind IN ARRAY ARRAY['reader', 'writer', 'owner'] LOOP
                    CONTINUE WHEN NOT (kind = ANY (string_to_array(substr(created, 9), ',')))
                                  OR NOT EXISTS (SELECT FROM pg_roles WHERE rolname = names->>kind);
                    BEGIN
                        EXECUTE format('DROP ROLE %I', names->>kind);
                    EXCEPTION WHEN dependent_objects_still_exist THEN
                        RAISE NOTICE 'keeping role %: objects in another database depend on it', names->>kind;
                    END;
                END LOOP;
            END IF;
            DELETE FROM {meta} WHERE key LIKE 'sql\\_role%';
        END
        $roles$
        """
        )
    )
