"""`memora embeddings train` (app/adapters/): a query adapter trained on judged pairs, evaluated on two held-out
splits, kept as a new embedding version."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.options import engine, option, settings, stderr

Collection = Annotated[str, typer.Argument(help="Collection name.")]


def train(
    ctx: typer.Context,
    collection: Collection,
    pairs: Annotated[str | None, option("TRAIN_PAIRS", "Dataset of judged pairs (as memora eval --dataset reads; "
                                       "search feedback is one).", "--pairs")] = None,
    queries: Annotated[Path | None, option("TRAIN_QUERIES", "BEIR queries.jsonl (with --qrels, instead of --pairs).",
                                           "--queries")] = None,
    qrels: Annotated[Path | None, option("TRAIN_QRELS", "BEIR qrels TSV.", "--qrels")] = None,
    base: Annotated[int | None, option("TRAIN_BASE", "Version to adapt (default: the active one).", "--base",
                                       min=1)] = None,
    seed: Annotated[int, option("TRAIN_SEED", "Seeds the splits and the training.", "--seed", min=0)] = 0,
    epochs: Annotated[int, option("TRAIN_EPOCHS", "Most epochs (fewer when the validation score stops rising).",
                                  "--epochs", min=1, max=1000)] = 30,
    report: Annotated[Path | None, option("TRAIN_REPORT", "Write report.json and adapter.png here.",
                                          "--report")] = None,
    as_json: Annotated[bool, option("TRAIN_JSON", "Print the report as JSON instead of a table.", "--json")] = False,
) -> None:  # fmt: skip
    """Train a query adapter on judged pairs, show how it does on held-out queries, and keep it as a new version
    (not active: `memora embeddings activate` makes it so)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy.orm import Session

    from app.adapters import evaluate, service
    from app.adapters.train import Options
    from app.eval import runner

    with engine(ctx) as made:
        judged = runner.judged_queries(made, queries, qrels, pairs)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=stderr(), transient=True) as progress:

            def step(description: str, total: int | None) -> Any:
                return partial(progress.advance, progress.add_task(description, total=total))

            options = Options(seed=seed, epochs=epochs)
            weights, found = service.train_adapter(made, settings(ctx), collection, judged, base=base,
                                                   options=options, step=step)  # fmt: skip
        with Session(made) as db, db.begin():
            version = service.save(db, collection, weights, found)
            number = version.number
    found["version"] = number
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
        (report / "report.json").write_text(json.dumps(found, indent=2) + "\n")
        evaluate.chart(found, report / "adapter.png")
    if as_json:
        typer.echo(json.dumps(found))
    else:
        Console(width=120).print(_table(found))
        typer.echo(f"version {number} of {collection} holds the adapter; the worker copies version {found['base']}'s "
                   f"vectors into it. `memora embeddings activate {collection} {number}` to use it.")  # fmt: skip
    if not evaluate.document_split_gains(found):
        typer.echo(
            "warning: on queries about documents it never saw (the document split), the adapter's nDCG@10 gain is "
            "not above zero with its interval: it may only have learned which documents the training queries like.",
            err=True,
        )


def _table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"{report['collection']}: adapter of version {report['base']} ({report['pairs']} pairs)")
    for column in ("held out by", "queries", "mode", "nDCG@10 base", "adapted", "change [95% interval]",
                   "recall@10 base", "adapted", "change [95% interval]"):  # fmt: skip
        table.add_column(column)
    for name, split in report["splits"].items():
        for mode, metrics in split["results"].items():
            cells = [name, str(split["held_out"]), mode]
            for metric in ("ndcg@10", "recall@10"):
                m = metrics[metric]
                d = m["delta"]
                cells += [f"{m['base']['mean']:.3f}", f"{m['adapted']['mean']:.3f}",
                          f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"]  # fmt: skip
            table.add_row(*cells)
    return table
