"""`memora embeddings list | create | status | import | train | activate | retry | drop` (routes: embeddings.py):
versions of a collection's vectors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from app.cli.adapters import train
from app.cli.options import option, session, settings, stderr, validated

if TYPE_CHECKING:
    from app.versions.schemas import VersionOut

cli = typer.Typer(help="Versions of a collection's vectors: add one, watch the worker fill it, make it active.",
                  no_args_is_help=True)  # fmt: skip
cli.command("train")(train)
Collection = Annotated[str, typer.Argument(help="Collection name.")]
Number = Annotated[int, typer.Argument(help="Version number.", min=1)]


def _line(version: VersionOut) -> str:
    mark = "*" if version.active else " "
    return (
        f"{mark} {version.number}\t{version.status}\t{version.embedding_provider}/{version.embedding_model}\t"
        f"{version.dimensions}d {version.metric} {version.storage}\t{version.vectors}/{version.chunks} vectors\t"
        f"{version.bytes / 2**20:.1f} MiB" + (f"\t{version.error}" if version.error else "")
    )


@cli.command("list")
def list_versions(ctx: typer.Context, collection: Collection) -> None:
    """The versions, the active one marked *, with how far each is filled and its size on disk."""
    from app.versions import service

    with session(ctx) as db:
        for version in service.versions(db, collection):
            typer.echo(_line(version))


@cli.command("create")
def create(
    ctx: typer.Context,
    collection: Collection,
    provider: Annotated[str | None, option("EMBEDDING_PROVIDER", "local | openai | hashing", "--provider")] = None,
    model: Annotated[str | None, option("EMBEDDING_MODEL", "Embedding model.", "--model")] = None,
    dimensions: Annotated[int | None, option("EMBEDDING_DIMENSIONS", "Vector dimensions.", "--dimensions")] = None,
    metric: Annotated[str | None, option("METRIC", "cosine | l2 | inner_product", "--metric")] = None,
    storage: Annotated[str | None, option("STORAGE", "vector | halfvec", "--storage")] = None,
    imported: Annotated[bool, option("EMBEDDINGS_IMPORT", "You send the vectors (memora embeddings import); the "
                                     "worker leaves the version to you.", "--import")] = False,
) -> None:  # fmt: skip
    """Add a version (what is left out is the active version's); the worker fills it in the background."""
    from app.versions import service
    from app.versions.schemas import VersionCreate

    data = {"embedding_provider": provider, "embedding_model": model, "dimensions": dimensions, "metric": metric,
            "storage": storage, "source": "import" if imported else None}  # fmt: skip
    flags = {"embedding_provider": "--provider", "embedding_model": "--model", "source": "--import"}
    body = validated(VersionCreate, {k: v for k, v in data.items() if v is not None}, flags)
    with session(ctx) as db, db.begin():
        created = service.create(db, settings(ctx), collection, body)
    typer.echo(f"created version {created.number} of {collection}: {_line(created)}")


@cli.command("status")
def status(
    ctx: typer.Context,
    collection: Collection,
    number: Number,
    wait: Annotated[bool, option("EMBEDDINGS_WAIT", "Follow the worker until the version is ready or failed.",
                                 "--wait")] = False,
    interval: Annotated[float, option("EMBEDDINGS_INTERVAL", "Seconds between looks.", "--interval", min=0.1)]
    = 2.0,
) -> None:  # fmt: skip
    """How far the worker has filled a version: a progress bar with the time left, with --wait until it is done."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from app.versions import service

    with session(ctx) as db:
        version = service.version(db, collection, number)
        if not wait or version.status != "building":
            typer.echo(_line(version))
            return
        columns = (TextColumn(f"version {number}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=stderr()) as progress:
            task = progress.add_task("vectors", total=version.chunks, completed=version.vectors)
            while version.status == "building":
                time.sleep(interval)
                db.rollback()  # a fresh snapshot for each look
                version = service.version(db, collection, number)
                progress.update(task, completed=version.vectors, total=version.chunks)
    typer.echo(_line(version))
    if version.status == "failed":
        raise typer.Exit(1)


@cli.command("import")
def import_vectors(
    ctx: typer.Context,
    collection: Collection,
    number: Number,
    file: Annotated[Path, typer.Argument(help="JSON Lines: {\"chunk_id\": N, \"embedding\": [...]} or "
                                         "{\"external_id\": \"...\", \"ordinal\": N, \"embedding\": [...]} a line.",
                                         exists=True, dir_okay=False, readable=True)],
) -> None:  # fmt: skip
    """Bring your own vectors into a version; any bad line refuses the whole file, and nothing is written."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from app.versions import imports

    columns = (TextColumn(file.name), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with file.open("rb") as handle, Progress(*columns, console=stderr()) as progress:
        task = progress.add_task("read", total=file.stat().st_size)
        with session(ctx) as db, db.begin():
            report = imports.import_vectors(db, collection, number, _counted(handle, progress, task))
    typer.echo(f"version {number} of {collection}: {report.vectors} vectors from {report.lines} lines; {report.status}")


def _counted(handle: IO[bytes], progress: Any, task: Any) -> Iterator[bytes]:
    for line in handle:
        progress.advance(task, len(line))
        yield line


@cli.command("activate")
def activate(
    ctx: typer.Context,
    collection: Collection,
    number: Number,
    force: Annotated[bool, option("EMBEDDINGS_FORCE", "Even if chunks lack its vectors.", "--force")] = False,
) -> None:
    """Make a version the one searches read (refused while chunks lack its vectors, unless --force)."""
    from app.versions import service

    with session(ctx) as db, db.begin():
        activated = service.activate(db, collection, number, force=force)
    typer.echo(f"version {activated.number} of {collection} is active: {_line(activated)}")


@cli.command("retry")
def retry(ctx: typer.Context, collection: Collection, number: Number) -> None:
    """Set a failed version building again, once what failed it (a key, a model) is fixed."""
    from app.versions import service

    with session(ctx) as db, db.begin():
        version = service.retry(db, collection, number)
    typer.echo(_line(version))


@cli.command("drop")
def drop(ctx: typer.Context, collection: Collection, number: Number) -> None:
    """Drop a version with its vectors and index (not the active one)."""
    from app.versions import service

    with session(ctx) as db, db.begin():
        service.drop(db, collection, number)
    typer.echo(f"dropped version {number} of {collection}")
