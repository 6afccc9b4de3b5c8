"""`memora dataset snapshot create | list | delete`: frozen versions of a dataset."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from app.config import Settings
from app.training.cli import dataset_cli, option

snapshot_cli = typer.Typer(help="Snapshots: frozen, named versions of a dataset.", no_args_is_help=True)
dataset_cli.add_typer(snapshot_cli, name="snapshot")


@contextmanager
def _session(ctx: typer.Context) -> Iterator[Session]:
    """A session on an engine of the command's own, disposed at the end."""
    from app.db.engine import make_engine

    settings: Settings = ctx.find_root().obj
    engine = make_engine(settings, "cli")
    try:
        with Session(engine) as db:
            yield db
    finally:
        engine.dispose()


@snapshot_cli.command("create")
def create(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset name.")],
    name: Annotated[str, typer.Argument(help="Snapshot name (letters, digits, '_', '.', '-').")],
    description: Annotated[str, option("SNAPSHOT_DESCRIPTION", "What this version is.")] = "",
) -> None:
    """Freeze the dataset's live examples (ids, content hashes, splits) as snapshot NAME."""
    from pydantic import ValidationError

    from app.errors import InvalidInputError
    from app.training.datasets import service
    from app.training.snapshots import service as snapshots
    from app.training.snapshots.schemas import SnapshotCreate

    try:
        body = SnapshotCreate.model_validate({"name": name, "description": description})
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise InvalidInputError(f"snapshot {problem['loc'][0]}: {problem['msg']}") from None
    with _session(ctx) as db, db.begin():
        snapshot = snapshots.create(db, service.get(db, dataset), body)
        splits = ", ".join(f"{k} {v}" for k, v in sorted(snapshot.split_counts.items())) or "empty"
        typer.echo(f"created snapshot {snapshot.name} of {dataset}: {snapshot.examples} examples ({splits})")


@snapshot_cli.command("list")
def list_snapshots(ctx: typer.Context, dataset: Annotated[str, typer.Argument(help="Dataset name.")]) -> None:
    """List a dataset's snapshots, oldest first."""
    from app.training.datasets import service
    from app.training.snapshots import service as snapshots

    with _session(ctx) as db:
        for snapshot in snapshots.all_of(db, service.get(db, dataset)):
            splits = ", ".join(f"{k} {v}" for k, v in sorted(snapshot.split_counts.items())) or "empty"
            created = snapshot.created_at.isoformat(timespec="seconds")
            typer.echo(f"{snapshot.name}\t{snapshot.examples} examples ({splits})\t{created}\t{snapshot.description}")


@snapshot_cli.command("delete")
def delete(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset name.")],
    name: Annotated[str, typer.Argument(help="Snapshot name.")],
) -> None:
    """Delete a snapshot; examples deleted from the dataset that only it held are purged."""
    from app.training.datasets import service
    from app.training.snapshots import service as snapshots

    with _session(ctx) as db, db.begin():
        purged = snapshots.delete(db, service.get(db, dataset), name)
    typer.echo(f"deleted snapshot {name} of {dataset} ({purged} deleted examples purged)")
