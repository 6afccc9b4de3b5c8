"""`memora export`: a dataset or snapshot as a training file, with a progress bar; registered by app/training/cli.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from app.training.exports.service import EXPORT_FORMATS, Export, Options, prepare


def export(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset to export.")],
    format: Annotated[
        str, typer.Option("--format", "-f", envvar="MEMORA_EXPORT_FORMAT", show_envvar=True, show_default=True,
                          help=f"File format: {', '.join(EXPORT_FORMATS)}.")
    ],
    split: Annotated[
        str | None, typer.Option("--split", envvar="MEMORA_EXPORT_SPLIT", show_envvar=True, show_default=True,
                                 help="Only this split: train, validation or test.")
    ] = None,
    snapshot: Annotated[
        str | None, typer.Option("--snapshot", envvar="MEMORA_EXPORT_SNAPSHOT", show_envvar=True, show_default=True,
                                 help="Export this snapshot instead of the live dataset.")
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", envvar="MEMORA_EXPORT_OUTPUT", show_envvar=True, show_default=True,
                                 help="File to write ('-': standard output); default DATASET[-SNAPSHOT][-SPLIT]-FORMAT"
                                 ".jsonl|.parquet|.csv here.")
    ] = None,
    negatives: Annotated[
        int, typer.Option("--negatives", envvar="MEMORA_EXPORT_NEGATIVES", show_envvar=True, show_default=True,
                          min=0, help="triplets: hard negatives to mine per example from --collection.")
    ] = 0,
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", envvar="MEMORA_EXPORT_COLLECTION", show_envvar=True,
                                 show_default=True, help="triplets: the collection negatives are mined from.")
    ] = None,
    kind: Annotated[
        str, typer.Option("--kind", envvar="MEMORA_EXPORT_KIND", show_envvar=True, show_default=True,
                          help="openai-batch: chat (completions of each conversation) or embeddings.")
    ] = "chat",
    model: Annotated[
        str | None, typer.Option("--model", envvar="MEMORA_EXPORT_MODEL", show_envvar=True, show_default=True,
                                 help="openai-batch: the model every request names.")
    ] = None,
) -> None:  # fmt: skip
    """Write a dataset (or one of its snapshots) as openai-chat, jsonl, parquet, csv, pairs, triplets or
    openai-batch, streamed in constant memory."""
    from app.db.engine import make_engine

    settings: Settings = ctx.obj
    options = Options(format, split, snapshot, negatives, collection, kind, model)
    job, written = run_export(settings, make_engine(settings, "cli"), dataset, options, output)
    skipped = f"; left out {job.skipped} qa examples without an answer" if job.skipped else ""
    typer.echo(f"exported {job.total} examples of {dataset} to {written}{skipped}", err=True)


def run_export(
    settings: Settings, engine: Engine, dataset: str, options: Options, output: str | None
) -> tuple[Export, str]:
    """Export into OUTPUT (a file, written under a temporary name and renamed when complete, or '-'), in one
    REPEATABLE READ transaction, so the count of the progress bar and the file agree."""
    with (
        engine.connect() as conn,
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
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )  # fmt: skip
    with progress:
        task = progress.add_task(f"{job.format} examples", total=job.total)
        for block in job.chunks(db, settings, lambda n: progress.advance(task, n)):
            file.write(block)
