"""`memora db ...`: migrations and the embedded PostgreSQL."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from app.cli.options import settings
from app.config import Settings

cli = typer.Typer(help="The database: migrations and the embedded PostgreSQL.", no_args_is_help=True)


@cli.command()
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION."""
    from app.db import migrate

    migrate.upgrade(settings(ctx), revision)
    typer.echo(f"database at {_current(settings(ctx)) or 'base'}")


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


@cli.command()
def url(ctx: typer.Context) -> None:
    """Print the database URL (starting the embedded server if needed), e.g. for psql "$(memora db url)"."""
    from app.db.engine import database_url, libpq_url

    typer.echo(libpq_url(database_url(settings(ctx))))


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql(ctx: typer.Context) -> None:
    """Open psql (bundled with the embedded server) on Memora's database; psql's own options and arguments pass
    through as psql takes them (memora db psql -c 'SELECT 1', -f script.sql, -At ...)."""
    from app.db.embedded import bin_dir
    from app.db.engine import database_url, libpq_url

    target = libpq_url(database_url(settings(ctx)))
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


def _current(config: Settings) -> str | None:
    from app.db import migrate
    from app.db.engine import database_url

    return migrate.current_revision(database_url(config), config.db_schema)
