"""`memora ingest`: files into a collection, with progress bars (routes: documents.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.options import engine, option, settings

if TYPE_CHECKING:
    from rich.progress import Progress
    from sqlalchemy import Engine

    from app.config import Settings

cli = typer.Typer()


@cli.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (.txt .md .html .pdf .jsonl).")],
    collection: Annotated[str, option("COLLECTION", "Target collection.", "--collection", "-c")],
    glob: Annotated[
        str | None, option("INGEST_GLOB", "Only files matching this pattern inside directories.", "--glob")
    ] = None,
    create: Annotated[
        bool, option("INGEST_CREATE", "Create the collection with default settings if it does not exist.", "--create")
    ] = False,
    wait: Annotated[
        bool, option("INGEST_WAIT", "Follow the worker until every document is embedded (runs one here if none is).",
                     "--wait")
    ] = False,
) -> None:  # fmt: skip
    """Add files to a collection; unchanged files are left alone, so running it again does no new work."""
    from app.ingest import files

    found = files.find_files(paths, glob)
    with engine(ctx) as made:
        with _bars() as progress:
            task = progress.add_task("documents", total=len(found))
            changed, failed = files.ingest(made, found, collection, create=create, tick=lambda: progress.advance(task))
        for line in failed:
            typer.echo(f"skipped {line}", err=True)
        typer.echo(f"{changed} documents new or changed, {len(failed)} files skipped")
        if wait:
            counts = wait_for_worker(settings(ctx), made, collection)
            typer.echo(f"ready: {counts.get('ready', 0)}, failed: {counts.get('failed', 0)}")
    if failed:
        raise typer.Exit(1)


def wait_for_worker(config: Settings, bind: Engine, collection: str) -> dict[str, int]:
    """Follow the collection's ingestion until its queue is empty, with a bar of documents finished and one of
    chunks embedded, which moves with each embedding call; start a worker here if none is connected."""
    from app.ingest.progress import follow

    counts: dict[str, int] = {}
    with _bars() as progress:
        documents = progress.add_task("documents", total=None)
        chunks = progress.add_task("chunks embedded", total=None)
        for snapshot in follow(config, bind, collection):
            counts = snapshot.documents
            progress.update(documents, completed=snapshot.finished, total=sum(counts.values()))
            progress.update(chunks, completed=snapshot.embedded, total=snapshot.texts)
    return counts


def _bars() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
    )
