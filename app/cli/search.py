"""`memora embed`: a query's vector as pgvector reads it, for searches written in psql (routes: search.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.options import settings

cli = typer.Typer()


@cli.command()
def embed(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Text to embed, e.g. a query.")],
    collection: Annotated[
        str, typer.Option("--collection", "-c", envvar="MEMORA_COLLECTION", show_envvar=True,
                          help="Collection whose model embeds the text.")
    ],
) -> None:  # fmt: skip
    """Print TEXT's vector as pgvector reads it ([0.1,...]); in psql: \\set q `memora embed 'text' -c docs`."""
    from app.db.engine import make_engine
    from app.eval.commands import vector_literal

    config = settings(ctx)
    typer.echo(vector_literal(config, make_engine(config, "cli"), collection, text))
