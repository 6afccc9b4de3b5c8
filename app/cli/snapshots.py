"""`memora dataset snapshot create | list | delete`: frozen versions of a dataset (routes: snapshots.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.options import option, session, validated

cli = typer.Typer(help="Snapshots: frozen, named versions of a dataset.", no_args_is_help=True)


@cli.command("create")
def create(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset name.")],
    name: Annotated[str, typer.Argument(help="Snapshot name (letters, digits, '_', '.', '-').")],
    description: Annotated[str, option("SNAPSHOT_DESCRIPTION", "What this version is.")] = "",
) -> None:
    """Freeze the dataset's live examples (ids, content hashes, splits) as snapshot NAME."""
    from app.training.datasets import service
    from app.training.snapshots import service as snapshots
    from app.training.snapshots.schemas import SnapshotCreate

    body = validated(SnapshotCreate, {"name": name, "description": description}, {"name": "NAME"})
    with session(ctx) as db, db.begin():
        snapshot = snapshots.create(db, service.get(db, dataset), body)
        splits = ", ".join(f"{k} {v}" for k, v in sorted(snapshot.split_counts.items())) or "empty"
        typer.echo(f"created snapshot {snapshot.name} of {dataset}: {snapshot.examples} examples ({splits})")
        if snapshot.examples == 0:
            typer.echo(f"warning: snapshot {name!r} is empty: dataset {dataset!r} has no live examples", err=True)


@cli.command("list")
def list_snapshots(ctx: typer.Context, dataset: Annotated[str, typer.Argument(help="Dataset name.")]) -> None:
    """List a dataset's snapshots, oldest first."""
    from app.training.datasets import service
    from app.training.snapshots import service as snapshots

    with session(ctx) as db:
        for snapshot in snapshots.all_of(db, service.get(db, dataset)):
            splits = ", ".join(f"{k} {v}" for k, v in sorted(snapshot.split_counts.items())) or "empty"
            created = snapshot.created_at.isoformat(timespec="seconds")
            typer.echo(f"{snapshot.name}\t{snapshot.examples} examples ({splits})\t{created}\t{snapshot.description}")


@cli.command("delete")
def delete(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset name.")],
    name: Annotated[str, typer.Argument(help="Snapshot name.")],
) -> None:
    """Delete a snapshot; examples deleted from the dataset that only it held are purged."""
    from app.training.datasets import service
    from app.training.snapshots import service as snapshots

    with session(ctx) as db, db.begin():
        purged = snapshots.delete(db, service.get(db, dataset), name)
    typer.echo(f"deleted snapshot {name} of {dataset} ({purged} deleted examples purged)")
