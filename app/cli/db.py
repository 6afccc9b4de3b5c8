"""`memora db ...`: migrations and the embedded PostgreSQL."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from app.cli.options import option, settings
from app.config import Settings

cli = typer.Typer(help="The database: migrations and the embedded PostgreSQL.", no_args_is_help=True)


@cli.command()
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    service_role: Annotated[
        str | None,
        option(
            "DB_SERVICE_ROLE",
            "Then make this existing login role the service's: a member of the owner role, so the API and worker "
            "can log in as it rather than as the role that migrates (docker-compose.yml does).",
            "--service-role",
        ),
    ] = None,
) -> None:
    """Apply migrations up to REVISION."""
    from app.db import migrate

    migrate.upgrade(settings(ctx), revision)
    typer.echo(f"database at {_current(settings(ctx)) or 'base'}")
    if service_role is not None:
        from app.db import sql_roles

        config = settings(ctx)
        with _admin_connection(config) as conn:
            roles = sql_roles.grant_service(conn, config.db_schema, service_role)
        typer.echo(f"{service_role} is a member of {roles.owner}")


@cli.command()
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision; `base` removes every Memora object.")],
) -> None:
    """Revert migrations down to REVISION."""
    from app.db import migrate

    migrate.downgrade(settings(ctx), revision)
    typer.echo(f"database at {_current(settings(ctx)) or 'base'}")


@cli.command()
def current(ctx: typer.Context) -> None:
    """Print the revision the database is at, and the newest one this Memora has."""
    from app.db import migrate

    typer.echo(f"current: {_current(settings(ctx)) or 'base'}")
    typer.echo(f"head: {migrate.head_revision()}")


SUPERUSER = option(
    "DB_SUPERUSER",
    "The embedded server's superuser, for what the service role may not do (ALTER SYSTEM, roles, extensions); "
    "the same URL as without it when MEMORA_DATABASE_URL is set.",
    "--superuser",
)


@cli.command()
def url(ctx: typer.Context, superuser: Annotated[bool, SUPERUSER] = False) -> None:
    """Print the database URL (starting the embedded server if needed), e.g. for psql "$(memora db url)": the
    service's role (memora_app on the embedded server)."""
    from app.db.engine import admin_url, database_url, libpq_url

    typer.echo(libpq_url((admin_url if superuser else database_url)(settings(ctx))))


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql(ctx: typer.Context, superuser: Annotated[bool, SUPERUSER] = False) -> None:
    """Open psql (bundled with the embedded server) on Memora's database as the service's role; psql's own options
    and arguments pass through as psql takes them (memora db psql -c 'SELECT 1', -f script.sql, -At ...)."""
    from app.db.embedded import bin_dir
    from app.db.engine import admin_url, database_url, libpq_url

    target = libpq_url((admin_url if superuser else database_url)(settings(ctx)))
    program = str(bin_dir() / "psql")
    os.execv(program, [program, "--dbname", target, *ctx.args])


@cli.command()
def status(ctx: typer.Context) -> None:
    """Say whether the embedded server runs, and where."""
    from app.db.embedded import EmbeddedPostgres

    config = settings(ctx)
    if not config.embedded:
        typer.echo("MEMORA_DATABASE_URL is set: Memora uses that server, not an embedded one.")
        return
    server = EmbeddedPostgres(config.data_dir, config.pg_port).status()
    if server is None:
        typer.echo(f"embedded PostgreSQL in {config.data_dir.absolute()}: stopped")
        raise typer.Exit(3)
    typer.echo(f"embedded PostgreSQL in {config.data_dir.absolute()}: running (pid {server.pid}, port {server.port})")


@cli.command()
def stop(ctx: typer.Context) -> None:
    """Stop the embedded server; the next memora command starts it again."""
    from app.db.embedded import EmbeddedPostgres

    config = settings(ctx)
    if not config.embedded:
        typer.echo("MEMORA_DATABASE_URL is set: there is no embedded server to stop.")
        return
    stopped = EmbeddedPostgres(config.data_dir, config.pg_port).stop()
    typer.echo("stopped" if stopped else "not running")


@cli.command("sql")
def sql_script(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help="Revision the database is at.")] = "base",
    end: Annotated[str, typer.Option("--to", help="Revision to migrate to.")] = "head",
    down: Annotated[bool, typer.Option("--downgrade", help="Print the downgrade from --from to --to.")] = False,
) -> None:
    """Print the migration as SQL, for databases migrated with psql rather than by Memora."""
    from app.db import migrate

    typer.echo(migrate.sql_script(settings(ctx), start, end, downgrade=down), nl=False)


@cli.command()
def distribute(
    ctx: typer.Context,
    dry_run: Annotated[
        bool,
        option("DISTRIBUTE_DRY_RUN", "Print the plan and change nothing (works on plain PostgreSQL).", "--dry-run"),
    ] = False,
) -> None:
    """Shard Memora's tables on a Citus coordinator: by collection and by dataset, small tables as reference tables
    (docs/scaling.md, "Citus"). Run it after `memora db upgrade`; a second run does only what is missing."""
    from app.db import citus

    config = settings(ctx)
    with _admin_connection(config) as conn:
        steps = citus.plan(conn, config.db_schema) if dry_run else citus.apply(conn, config.db_schema)
    for step in steps:
        typer.echo(f"-- {step.why}\n{step.statement};")
    if not dry_run:
        typer.echo(f"distributed: {len(steps)} statements run" if steps else "already distributed: nothing to do")


def _current(config: Settings) -> str | None:
    from app.db import migrate
    from app.db.engine import database_url

    return migrate.current_revision(database_url(config), config.db_schema)


role_cli = typer.Typer(
    help="Login roles for people who use Memora's schema from SQL (psql, notebooks, BI tools).", no_args_is_help=True
)
cli.add_typer(role_cli, name="role")


@role_cli.command("create")
def role_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The login name (a lower-case SQL identifier).")],
    reader: Annotated[bool, option("ROLE_READER", "SELECT and the search and batch functions.", "--reader")] = False,
    writer: Annotated[bool, option("ROLE_WRITER", "Reader + documents and examples.", "--writer")] = False,
    password_stdin: Annotated[
        bool,
        option(
            "ROLE_PASSWORD_STDIN", "Read the password from stdin (default: generate and print one).", "--password-stdin"
        ),
    ] = False,
) -> None:
    """Create a LOGIN role NAME in the reader or writer group of Memora's schema, and print how to connect."""
    import secrets
    import sys

    from app.db import sql_roles
    from app.errors import InvalidInputError

    if reader == writer:
        raise InvalidInputError.for_field("role", "give exactly one of --reader and --writer")
    sql_roles.check_name(name)
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else secrets.token_urlsafe(18)
    config = settings(ctx)
    with _admin_connection(config) as conn:
        roles = sql_roles.create_login(conn, config.db_schema, name, "writer" if writer else "reader", password)
    target = _login_url(config, name, None if password_stdin else password)
    typer.echo(f"created role {name}, member of {roles.writer if writer else roles.reader}")
    if not password_stdin:
        typer.echo("its password is shown once, here: keep it in a password manager or ~/.pgpass")
    typer.echo(f'connect: psql "{target}"')


@role_cli.command("list")
def role_list(ctx: typer.Context) -> None:
    """List the login roles of the reader and writer groups."""
    from app.db import sql_roles

    config = settings(ctx)
    with _admin_connection(config) as conn:
        found = sql_roles.logins(conn, config.db_schema)
    if not found:
        typer.echo("no login roles; create one with: memora db role create NAME --reader")
    for login in found:
        typer.echo(f"{login.name}\t{login.kind}" + (f"\tvalid until {login.valid_until}" if login.valid_until else ""))


@role_cli.command("drop")
def role_drop(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A login role made by `memora db role create`.")],
) -> None:
    """Drop a login role of the reader or writer group (its sessions keep running until they end)."""
    from app.db import sql_roles

    config = settings(ctx)
    with _admin_connection(config) as conn:
        sql_roles.drop_login(conn, config.db_schema, name)
    typer.echo(f"dropped role {name}")


def _admin_connection(config: Settings) -> Any:
    """An autocommit psycopg connection for managing roles: the embedded superuser, or MEMORA_DATABASE_URL's role."""
    import psycopg

    from app.db.engine import admin_url, libpq_url

    return psycopg.connect(libpq_url(admin_url(config)), autocommit=True, application_name="memora-cli")


def _login_url(config: Settings, name: str, password: str | None) -> str:
    """NAME's libpq URL to Memora's database (with PASSWORD if given; else psql asks for it)."""
    from sqlalchemy.engine import URL, make_url

    from app.db.engine import admin_url

    admin = make_url(admin_url(config))  # its password is not NAME's: a new URL, not admin's with changes
    url = URL.create("postgresql", name, password, admin.host, admin.port, admin.database, admin.query)
    return url.render_as_string(hide_password=False)
