"""`memora export`: a dataset or snapshot as a training file, with a progress bar (routes: exports.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from app.cli.options import engine, option, settings
from app.config import Settings
from app.training.exports import EXPORT_FORMATS

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from app.training.exports.schemas import Options
    from app.training.exports.service import Export

cli = typer.Typer()


@cli.command("export")
def export(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset to export.")],
    format: Annotated[str, option("EXPORT_FORMAT", f"File format: {', '.join(EXPORT_FORMATS)}.", "--format", "-f")],
    split: Annotated[
        str | None, option("EXPORT_SPLIT", "Only this split: train, validation or test.", "--split")
    ] = None,
    snapshot: Annotated[
        str | None, option("EXPORT_SNAPSHOT", "Export this snapshot instead of the live dataset.", "--snapshot")
    ] = None,
    output: Annotated[
        str | None,
        option("EXPORT_OUTPUT", "File to write ('-': standard output); default DATASET[-SNAPSHOT][-SPLIT]-FORMAT"
               ".jsonl|.parquet|.csv here.", "--output", "-o"),
    ] = None,
    negatives: Annotated[
        int, option("EXPORT_NEGATIVES", "triplets: hard negatives to mine per example from --collection.",
                    "--negatives", min=0)
    ] = 0,
    collection: Annotated[
        str | None,
        option("EXPORT_COLLECTION", "triplets: the collection negatives are mined from.", "--collection", "-c"),
    ] = None,
    kind: Annotated[
        str, option("EXPORT_KIND", "openai-batch: chat (completions of each conversation) or embeddings.", "--kind")
    ] = "chat",
    model: Annotated[
        str | None, option("EXPORT_MODEL", "openai-batch: the model every request names.", "--model")
    ] = None,
) -> None:  # fmt: skip
    """Write a dataset (or one of its snapshots) as openai-chat, jsonl, parquet, csv, pairs, triplets or
    openai-batch, streamed in constant memory."""
    from app.training.exports.schemas import Options

    options = Options(format, split, snapshot, negatives, collection, kind, model)
    with engine(ctx) as made:
        job, written = run_export(settings(ctx), made, dataset, options, output)
    skipped = f"; left out {job.skipped} qa examples without an answer" if job.skipped else ""
    typer.echo(f"exported {job.total} examples of {dataset} to {written}{skipped}", err=True)
    if job.total == 0:
        typer.echo(f"warning: {written} is empty: {_why_empty(options)}", err=True)


def _why_empty(options: Options) -> str:
    where = f"snapshot {options.snapshot!r}" if options.snapshot else "the dataset"
    return f"{where} has no examples" + (f" in split {options.split!r}" if options.split else "")


def run_export(
    settings: Settings, bind: Engine, dataset: str, options: Options, output: str | None
) -> tuple[Export, str]:
    """Export into OUTPUT (a file, written under a temporary name and renamed when complete, or '-'), in one
    REPEATABLE READ transaction, so the count of the progress bar and the file agree."""
    from sqlalchemy.orm import Session

    from app.training.exports.service import prepare

    with (
        bind.connect() as conn,
        Session(bind=conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)) as db,
    ):
        job = prepare(db, dataset, options)
        target = output or job.filename
        if target == "-":
            _write(job, db, settings, sys.stdout.buffer)
            sys.stdout.flush()
            return job, "standard output"
        partial = Path(target).with_name(f".{Path(target).name}.partial")
        try:
            with partial.open("wb") as file:
                _write(job, db, settings, file)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return job, target


def _write(job: Export, db: Session, settings: Settings, file: IO[bytes]) -> None:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )  # fmt: skip
    with progress:
        task = progress.add_task(f"{job.format} examples", total=job.total)
        for block in job.chunks(db, settings, lambda n: progress.advance(task, n)):
            file.write(block)
