"""`memora db replica ...`: streaming replicas of the embedded PostgreSQL, on loopback (docs/scaling.md)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.options import json_flag, option, settings
from app.config import Settings

if TYPE_CHECKING:  # not imported at `memora --help`
    from app.db.embedded_replica import EmbeddedReplica

cli = typer.Typer(help="Streaming read replicas of the embedded PostgreSQL.", no_args_is_help=True)

Directory = Annotated[Path, typer.Argument(help="The replica's data directory.")]


@cli.command()
def create(
    ctx: typer.Context,
    directory: Directory,
    port: Annotated[
        int, option("REPLICA_PORT", "Port the replica listens on; 0: a free one, kept.", "--port", min=0, max=65535)
    ] = 0,
) -> None:
    """Copy the embedded server into DIRECTORY as a streaming replica (pg_basebackup -R) and start it; prints the
    MEMORA_READ_DATABASE_URLS entry that sends reads to it."""
    from app.db.embedded import EmbeddedPostgres
    from app.db.embedded_replica import EmbeddedReplica

    config = _embedded(ctx)
    url = _service_url(config)  # first: it may create the service's role, which the copy then holds
    replica = EmbeddedReplica.create(EmbeddedPostgres(config.data_dir, config.pg_port), directory, port)
    typer.echo(f"replica in {replica.root}: streaming from {config.data_dir.absolute()}, on 127.0.0.1:{replica.port}")
    typer.echo(f"MEMORA_READ_DATABASE_URLS={_on_port(url, replica.port)}")


@cli.command()
def start(ctx: typer.Context, directory: Directory) -> None:
    """Start the replica in DIRECTORY (and the embedded primary, if stopped), streaming from the primary where it
    runs now; it catches up from where it stopped."""
    from app.db.embedded import EmbeddedPostgres

    config = _embedded(ctx)
    primary = EmbeddedPostgres(config.data_dir, config.pg_port).ensure_running()
    server = _replica(ctx, directory).follow(primary)
    typer.echo(f"replica in {directory.absolute()}: running (pid {server.pid}, port {server.port})")


@cli.command()
def stop(ctx: typer.Context, directory: Directory) -> None:
    """Stop the replica in DIRECTORY (fast shutdown); reads go to the other replicas or the primary."""
    typer.echo("stopped" if _replica(ctx, directory).stop() else "not running")


@cli.command()
def status(
    ctx: typer.Context,
    directory: Directory,
    as_json: Annotated[bool, json_flag("REPLICA_STATUS_JSON")] = False,
) -> None:
    """Whether the replica runs and streams, the WAL position it has replayed, and how far it trails the primary.
    Exits 3 when it is stopped."""
    from app.db.embedded import EmbeddedPostgres

    config = _embedded(ctx)
    replica = _replica(ctx, directory)
    described = replica.describe(EmbeddedPostgres(config.data_dir, config.pg_port).status())
    if as_json:
        typer.echo(json.dumps(asdict(described)))
    elif not described.running:
        typer.echo(f"replica in {replica.root}: stopped (port {described.port})")
    else:
        hint = f"see {replica.log_path}; `memora db replica start {directory}` points it at the primary"
        streaming = "streaming" if described.streaming else f"not streaming ({hint})"
        lag = "" if described.lag_bytes is None else f", {described.lag_bytes} bytes behind the primary"
        typer.echo(
            f"replica in {replica.root}: running on 127.0.0.1:{described.port}, {streaming}, "
            f"replayed to {described.replayed}{lag}"
        )
    if not described.running:
        raise typer.Exit(3)


def _embedded(ctx: typer.Context) -> Settings:
    config = settings(ctx)
    if not config.embedded:
        typer.echo(
            "MEMORA_DATABASE_URL is set: `memora db replica` makes replicas of the embedded server only. For your own "
            "PostgreSQL, make a standby with pg_basebackup -R and list it in MEMORA_READ_DATABASE_URLS "
            "(docs/scaling.md).",
            err=True,
        )
        raise typer.Exit(2)
    return config


def _replica(ctx: typer.Context, directory: Path) -> EmbeddedReplica:
    from app.db.embedded_replica import EmbeddedReplica

    _embedded(ctx)
    replica = EmbeddedReplica(directory)
    if not (replica.pgdata / "PG_VERSION").exists():
        typer.echo(f"{replica.root} holds no replica; make one with `memora db replica create {directory}`", err=True)
        raise typer.Exit(2)
    return replica


def _service_url(config: Settings) -> str:
    from app.db.engine import database_url, libpq_url

    return libpq_url(database_url(config))


def _on_port(url: str, port: int) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(port=port).render_as_string(hide_password=False)
