"""Alembic environment for Memora: every object, the version table included, lives in Memora's schema.

So the migrations can run inside a database that has its own tables and its own Alembic history: they read and
write only <schema>.alembic_version, never public.alembic_version. The database and schema come from
memora_migrations.target (config attributes, -x url=/-x schema=, MEMORA_DATABASE_URL/MEMORA_DB_SCHEMA); a run that
names no database is refused. Functions and triggers are the idempotent layer (memora_migrations.idempotent):
dropped before the revisions run, applied again after.

This file imports nothing of Memora's service (the `app` package), so that a host project whose own package is
called `app` can run it. Memora's autogenerate gets the models' metadata passed in (config attribute
target_metadata, or -x metadata=app.db.models:Base.metadata).
"""

from __future__ import annotations

import importlib
from contextlib import nullcontext

import psycopg
from alembic import context
from sqlalchemy import Connection, MetaData, Table, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateSchema, DropSchema, DropTable

from memora_migrations import MigrationError, filters, idempotent, naming, roles, server, target

config = context.config
x_arguments = context.get_x_argument(as_dictionary=True)
destination = target.resolve(config, x_arguments, online=not context.is_offline_mode())
SCHEMA = destination.schema
# One migration at a time per database, whichever process starts it (key: "memora" in ASCII).
ADVISORY_LOCK_KEY = 0x6D656D6F7261


def _target_metadata() -> MetaData:
    """The models to compare with, for autogenerate; else an empty MetaData that carries the naming convention."""
    if "target_metadata" in config.attributes:
        metadata: MetaData = config.attributes["target_metadata"]
        return metadata
    if spec := x_arguments.get("metadata"):
        module, _, attribute = spec.partition(":")
        found: object = importlib.import_module(module)
        for name in attribute.split("."):
            found = getattr(found, name)
        if not isinstance(found, MetaData):
            raise MigrationError(f"-x metadata={spec}: not a SQLAlchemy MetaData")
        return found
    return naming.revision_metadata()


def _configure(**kwargs: object) -> None:
    def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
        return filters.memora_objects(name, type_, parent_names, schema=SCHEMA)

    context.configure(
        target_metadata=_target_metadata(),
        version_table=filters.VERSION_TABLE,
        version_table_schema=SCHEMA,
        include_schemas=True,
        include_name=include_name,
        compare_type=True,
        **kwargs,
    )


def _heads(revision: object) -> tuple[str, ...]:
    """A revision argument (None for base, an id, a tuple of ids) as the ids of the heads it names."""
    return tuple(script.revision for script in context.script.get_revisions(revision) if script is not None)


def run_migrations_offline() -> None:
    """Print the SQL (alembic upgrade --sql) for people who apply migrations with psql."""
    _configure(url="postgresql+psycopg://", literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.execute(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=ADVISORY_LOCK_KEY))
        context.execute(CreateSchema(SCHEMA, if_not_exists=True))
        context.execute(idempotent.drop(SCHEMA))
        context.execute(roles.become_owner(SCHEMA))
        context.run_migrations()
        heads = _heads(context.get_revision_argument())
        for statement in idempotent.apply(idempotent.needed(context.script, heads), SCHEMA):
            context.execute(statement)
        if not heads:
            context.execute(DropTable(Table(filters.VERSION_TABLE, MetaData(), schema=SCHEMA), if_exists=True))
            context.execute(DropSchema(SCHEMA, if_exists=True))


def run_migrations_online() -> None:
    if destination.connection is not None:
        _migrate(destination.connection)
        return
    assert destination.url is not None
    engine = create_engine(destination.url, poolclass=NullPool, connect_args={"application_name": "memora-migrate"})
    try:
        with engine.connect() as conn:
            _migrate(conn)
    finally:
        engine.dispose()


def _migrate(conn: Connection) -> None:
    # A connection handed in inside a transaction (a host revision's op.get_bind()) stays in it: Memora's
    # migrations then commit or roll back with the host's.
    external = conn.in_transaction()
    server.check_requirements(server.server_info(conn))
    if not external:
        conn.commit()
    with nullcontext() if external else conn.begin():
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        _configure(connection=conn)
        migration = context.get_context()
        if "destination_rev" not in migration.opts:  # current, check, revision: commands that migrate nothing
            context.run_migrations()
            return
        conn.execute(CreateSchema(SCHEMA, if_not_exists=True))
        # The steps this command is about to run (its `fn` only lists them): with none, and the files those already
        # applied, the idempotent layer is left alone.
        heads = migration.get_current_heads()
        steps = list(migration.opts["fn"](heads, migration))
        files = idempotent.needed(context.script, heads)
        if (
            not steps
            and files
            and idempotent.applied_fingerprint(conn, SCHEMA) == idempotent.fingerprint(files, SCHEMA)
        ):
            return
        # Objects are created as the owner role (memora_migrations.roles); a host's transaction gets its role back.
        role = conn.execute(text("SELECT current_setting('role')")).scalar()
        context.execute(idempotent.drop(SCHEMA))
        context.execute(roles.become_owner(SCHEMA))
        context.run_migrations()
        heads = migration.get_current_heads()
        for statement in idempotent.apply(idempotent.needed(context.script, heads), SCHEMA):
            context.execute(statement)
        if not heads:
            _drop_leftovers(conn)
        conn.execute(text("SELECT set_config('role', :role, true)"), {"role": role})


def _drop_leftovers(conn: Connection) -> None:
    """After a downgrade to base only the version table is left: remove it, and the schema unless it holds
    objects that are not ours."""
    Table(filters.VERSION_TABLE, MetaData(), schema=SCHEMA).drop(conn, checkfirst=True)
    try:
        with conn.begin_nested():
            conn.execute(DropSchema(SCHEMA, if_exists=True))  # RESTRICT: never takes others' objects
    except DBAPIError as exc:
        if not isinstance(exc.orig, psycopg.errors.DependentObjectsStillExist):
            raise


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
