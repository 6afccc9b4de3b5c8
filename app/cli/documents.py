"""`memora ingest`: files into a collection, with progress bars (routes: documents.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.options import settings

cli = typer.Typer()


@cli.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (.txt .md .html .pdf .jsonl).")],
    collection: Annotated[
        str, typer.Option("--collection", "-c", envvar="MEMORA_COLLECTION", show_envvar=True, help="Target collection.")
    ],
    glob: Annotated[
        str | None,
        typer.Option("--glob", envvar="MEMORA_INGEST_GLOB", show_envvar=True, show_default=True,
                     help="Only files matching this pattern inside directories."),
    ] = None,
    create: Annotated[
        bool, typer.Option("--create", envvar="MEMORA_INGEST_CREATE", show_envvar=True, show_default=True,
                           help="Create the collection with default settings if it does not exist."),
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", envvar="MEMORA_INGEST_WAIT", show_envvar=True, show_default=True,
                           help="Follow the worker until every document is embedded (runs one here if none is)."),
    ] = False,
) -> None:  # fmt: skip
    """Add files to a collection; unchanged files are left alone, so running it again does no new work."""
    from app.db.engine import make_engine
    from app.ingest.commands import ingest as run_ingest
    from app.ingest.commands import wait_for_worker

    config = settings(ctx)
    engine = make_engine(config, "cli")
    changed, failed = run_ingest(config, engine, paths, collection, pattern=glob, create=create)
    for line in failed:
        typer.echo(f"skipped {line}", err=True)
    typer.echo(f"{changed} documents new or changed, {len(failed)} files skipped")
    if wait:
        counts = wait_for_worker(config, engine, collection)
        typer.echo(f"ready: {counts.get('ready', 0)}, failed: {counts.get('failed', 0)}")
    if failed:
        raise typer.Exit(1)
