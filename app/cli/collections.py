"""`memora collection create | list | delete` (routes: collections.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.options import option, session, validated

cli = typer.Typer(help="Collections of documents.", no_args_is_help=True)


@cli.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Collection name.")],
    provider: Annotated[str, option("EMBEDDING_PROVIDER", "local | openai | hashing", "--provider")] = "local",
    model: Annotated[str | None, option("EMBEDDING_MODEL", "Embedding model; default: the provider's.", "--model")]
    = None,
    dimensions: Annotated[int | None, option("EMBEDDING_DIMENSIONS", "Vector dimensions.", "--dimensions")] = None,
    metric: Annotated[str, option("METRIC", "cosine | l2 | inner_product", "--metric")] = "cosine",
    language: Annotated[str, option("LANGUAGE", "Text search configuration.", "--language")] = "english",
) -> None:  # fmt: skip
    """Create a collection."""
    from app.collections import service
    from app.collections.schemas import CollectionCreate

    data = {"name": name, "embedding_provider": provider, "embedding_model": model, "dimensions": dimensions,
            "metric": metric, "language": language}  # fmt: skip
    flags = {"name": "NAME", "embedding_provider": "--provider", "embedding_model": "--model"}
    body = validated(CollectionCreate, data, flags)
    with session(ctx) as db, db.begin():
        created = service.create(db, body)
        typer.echo(
            f"created {created.name} ({created.embedding_provider}/{created.embedding_model}, {created.dimensions}d)"
        )


@cli.command("list")
def list_collections(ctx: typer.Context) -> None:
    """List collections with their documents by status."""
    from app.collections import service
    from app.db.models import Collection
    from app.db.repository import all_named

    with session(ctx) as db:
        for out in service.describe(db, all_named(db, Collection)):
            counts = ", ".join(f"{k} {v}" for k, v in sorted(out.documents.items())) or "empty"
            typer.echo(f"{out.name}\t{out.embedding_provider}/{out.embedding_model}\t{out.dimensions}d\t{counts}")


@cli.command("delete")
def delete(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Collection name.")]) -> None:
    """Delete a collection with its documents, chunks and vectors."""
    from app.collections import service

    with session(ctx) as db, db.begin():
        service.delete(db, name)
    typer.echo(f"deleted {name}")
