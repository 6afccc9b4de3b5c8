"""The `memora` command: one Typer app per feature, mirroring app/api/routes/, composed here.

Every option reads a MEMORA_* environment variable and shows its default. `memora --help` imports every command
module, so they keep heavy imports (numpy, onnxruntime, SQLAlchemy's models, the openai client) inside the commands.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli import (
    answer,
    audit,
    collections,
    dataset_quality,
    datasets,
    db,
    documents,
    embeddings,
    eval,
    exports,
    finetune,
    keys,
    replica,
    search,
    serve,
    snapshots,
    status,
)
from app.cli.options import DEFAULTS, setting
from app.config import Settings

cli = typer.Typer(
    help="Memora: documents, embeddings and training data in PostgreSQL + pgvector.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
datasets.cli.add_typer(dataset_quality.cli)
datasets.cli.add_typer(snapshots.cli, name="snapshot")
cli.add_typer(serve.cli)
cli.add_typer(documents.cli)
cli.add_typer(collections.cli, name="collection")
cli.add_typer(embeddings.cli, name="embeddings")
cli.add_typer(eval.cli)
cli.add_typer(search.cli)
cli.add_typer(answer.cli)
cli.add_typer(datasets.cli, name="dataset")
cli.add_typer(exports.cli)
cli.add_typer(finetune.cli, name="finetune")
db.cli.add_typer(replica.cli, name="replica")
cli.add_typer(db.cli, name="db")
cli.add_typer(status.cli)
cli.add_typer(keys.cli, name="key")
cli.add_typer(audit.cli)


@cli.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[str | None, setting("database_url", "--database-url")] = None,
    data_dir: Annotated[Path, setting("data_dir", "--data-dir")] = DEFAULTS["data_dir"],
    pg_port: Annotated[int, setting("pg_port", "--pg-port")] = DEFAULTS["pg_port"],
    db_schema: Annotated[str, setting("db_schema", "--db-schema")] = DEFAULTS["db_schema"],
    log_level: Annotated[str, setting("log_level", "--log-level")] = DEFAULTS["log_level"],
) -> None:
    """Memora's command line."""
    ctx.obj = Settings(
        database_url=database_url, data_dir=data_dir, pg_port=pg_port, db_schema=db_schema, log_level=log_level
    )
    from app.observe.logs import handler

    # MEMORA_LOG_FORMAT is read with the other settings (no option: it is the deployment's choice, not a command's).
    logging.basicConfig(level=log_level.upper(), handlers=[handler(ctx.obj.log_format)])
    # Alembic names every plugin it sets up when it is first imported: noise on every `memora db` command.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def main() -> None:
    """Entry point of the `memora` console script: errors become one line on stderr, not a traceback."""
    try:
        cli()
    except Exception as exc:
        sys.exit(_report(exc))


def _report(exc: Exception) -> int:
    """Print EXC as one line and give the exit status; re-raise what is not the user's to fix. SQLAlchemy and
    pydantic are imported only if they were (to keep `memora --help` quick)."""
    from app.errors import AppError

    if isinstance(exc, AppError):
        typer.echo(f"error: {exc.message}", err=True)
        return 1
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            typer.echo(f"error: cannot use the database: {str(exc.orig).strip()}", err=True)
            return 1
    if "pydantic" in sys.modules:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            for problem in exc.errors():
                field = ".".join(str(part) for part in problem["loc"])
                typer.echo(f"error: setting {field} (MEMORA_{field.upper()}): {problem['msg']}", err=True)
            return 2
    raise exc
