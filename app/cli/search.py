"""`memora embed`: a query's vector as pgvector reads it, for searches written in psql (routes: search.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.options import option, session, settings

cli = typer.Typer()


@cli.command()
def embed(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Text to embed, e.g. a query.")],
    collection: Annotated[str, option("COLLECTION", "Collection whose model embeds the text.", "--collection", "-c")],
) -> None:
    """Print TEXT's vector as pgvector reads it ([0.1,...]); in psql: \\set q `memora embed 'text' -c docs`."""
    from app.collections import service as collections

    with session(ctx) as db:
        embedder = collections.embedder(db, settings(ctx), collection)
    vector = embedder.embed([text])[0]
    # str() of a float32 is its shortest round-tripping form, which pgvector reads back to the same float.
    typer.echo("[" + ",".join(str(value) for value in vector) + "]")
