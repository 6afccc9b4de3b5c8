"""`memora dataset create | list | delete | import`: datasets of labeled examples (routes: datasets.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.options import option, session, stderr, validated

if TYPE_CHECKING:
    from rich.console import Console

    from app.training.imports.schemas import ImportReport

cli = typer.Typer(help="Datasets of labeled training examples.", no_args_is_help=True)


@cli.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    task: Annotated[str, option("DATASET_TASK", "chat | completion | classification | pairs | triplets | qa | custom")],
    description: Annotated[str, option("DATASET_DESCRIPTION", "What the dataset is for.")] = "",
    train: Annotated[float, option("SPLIT_TRAIN", "Share of the train split.")] = 0.8,
    validation: Annotated[float, option("SPLIT_VALIDATION", "Share of the validation split.")] = 0.1,
    test: Annotated[float, option("SPLIT_TEST", "Share of the test split.")] = 0.1,
    seed: Annotated[int, option("SPLIT_SEED", "Seed of the split.")] = 0,
) -> None:
    """Create a dataset."""
    from app.training.datasets import service
    from app.training.datasets.schemas import DatasetCreate

    split = {"ratios": {"train": train, "validation": validation, "test": test}, "seed": seed}
    data = {"name": name, "task": task, "description": description, "split": split}
    body = validated(DatasetCreate, data, {"name": "NAME", "ratios": "--train/--validation/--test"})
    with session(ctx) as db, db.begin():
        created = service.create(db, body)
        typer.echo(f"created {created.name} ({created.task})")


@cli.command("list")
def list_datasets(ctx: typer.Context) -> None:
    """List datasets with their examples by split."""
    from app.db.models import Dataset
    from app.db.repository import all_named
    from app.training.datasets import service

    with session(ctx) as db:
        for out in service.describe(db, all_named(db, Dataset)):
            splits = ", ".join(f"{k} {v}" for k, v in sorted(out.split_counts.items())) or "empty"
            typer.echo(f"{out.name}\t{out.task}\t{out.examples} examples ({splits})\t{out.snapshots} snapshots")


@cli.command("delete")
def delete(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Dataset name.")]) -> None:
    """Delete a dataset with its examples and snapshots."""
    from app.training.datasets import service

    with session(ctx) as db, db.begin():
        service.delete_dataset(db, name)
    typer.echo(f"deleted {name}")


@cli.command("import")
def import_files(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset to import into.")],
    files: Annotated[list[Path], typer.Argument(help="JSONL, CSV or SQuAD JSON files.", exists=True, dir_okay=False)],
    mode: Annotated[str, option("IMPORT_MODE", "strict: a bad record, nothing stored; skip: store the good ones")]
    = "skip",
    format: Annotated[str | None, option("IMPORT_FORMAT", "The records' format; default: recognised per record.")]
    = None,
    model: Annotated[str | None, option("IMPORT_MODEL", "Target model: tokenizer and context limit.")] = None,
    rename: Annotated[
        list[str] | None,
        option("IMPORT_RENAME", "FIELD=COLUMN: fill FIELD from a CSV column or JSON key (repeat it)", "--rename"),
    ] = None,
    as_json: Annotated[bool, option("IMPORT_JSON", "Print the reports as JSON.", "--json")] = False,
) -> None:  # fmt: skip
    """Import examples from files, each in one transaction, with a progress bar over the bytes read."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from app.errors import AppError, InvalidInputError
    from app.training.datasets import service
    from app.training.imports import readers
    from app.training.imports.importer import Importer
    from app.training.imports.schemas import ImportReport

    if mode not in ("strict", "skip"):
        raise InvalidInputError.for_field("--mode", f"must be strict or skip, not {mode!r}")
    renames = readers.parse_renames(rename or [])
    console = stderr()
    reports: dict[str, object] = {}
    failed = False
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())  # fmt: skip
    with session(ctx) as db, Progress(*columns, console=console, disable=as_json) as progress:
        for path in files:
            kind = readers.file_kind(path.name, None)
            with db.begin(), progress.open(path, "rb", description=path.name) as stream:
                job = Importer(db, service.get(db, name), mode=mode, format=format, model=model)  # type: ignore[arg-type]
                job.add(readers.read(stream, kind, format, renames))
                try:
                    report = job.finish()
                except AppError as exc:
                    failed = True
                    report = ImportReport.model_validate(exc.details)
                    console.print(f"[red]{path.name}: {exc.message}")
            reports[str(path)] = report.model_dump()
            if not as_json:
                _print_report(console, path.name, report)
    if as_json:
        typer.echo(json.dumps(reports, indent=2))
    if failed:
        raise typer.Exit(1)


def _print_report(console: Console, title: str, report: ImportReport) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_row("records", str(report.received))
    table.add_row("stored", str(report.stored))
    table.add_row("duplicates", str(report.duplicates))
    table.add_row("invalid", str(report.invalid))
    if report.formats:
        table.add_row("formats", ", ".join(f"{k} {v}" for k, v in report.formats.items()))
    if report.label_counts:
        labels = list(report.label_counts.items())
        shown = ", ".join(f"{k} {v}" for k, v in labels[:10]) + (
            f" (+{len(labels) - 10} more)" if len(labels) > 10 else ""
        )
        table.add_row("labels", shown)
    if report.tokens is not None:
        t = report.tokens
        exact = "" if report.token_counts_exact else " (estimated)"
        table.add_row("tokens/example", f"min {t.min}, mean {t.mean}, p95 {t.p95}, max {t.max}{exact}")
        table.add_row("tokens/epoch", f"{report.estimated_epoch_tokens:,}")
    console.print(table)
    for problem in report.problems[:20]:
        where = f"line {problem.line}" if problem.line is not None else ""
        where += f" {problem.field}" if problem.field else ""
        console.print(f"  [yellow]{where.strip()}[/]: {problem.reason}")
    if report.problems_total > 20:
        console.print(f"  ... {report.problems_total - 20} more problems (--json shows up to 1,000)")
