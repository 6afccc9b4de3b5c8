"""`memora eval`: search quality on judged queries: nDCG@10, recall, MRR and latency per mode."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.options import engine, option, settings

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy import Engine

    from app.config import Settings

cli = typer.Typer()


@cli.command("eval")
def eval_command(
    ctx: typer.Context,
    collection: Annotated[str, option("COLLECTION", "Collection to search.", "--collection", "-c")],
    queries: Annotated[
        Path | None,
        option("EVAL_QUERIES", 'BEIR queries.jsonl: {"_id": ..., "text": ...} per line (or --dataset).', "--queries"),
    ] = None,
    qrels: Annotated[
        Path | None,
        option("EVAL_QRELS", "Judgments: BEIR qrels TSV (query-id, corpus-id, score) or TREC qrels.", "--qrels"),
    ] = None,
    mode: Annotated[
        str, option("EVAL_MODES", "Comma-separated search modes: text, vector, hybrid.", "--mode")
    ] = "text,vector,hybrid",
    as_json: Annotated[bool, option("EVAL_JSON", "Print one JSON object instead of a table.", "--json")] = False,
    k_depth: Annotated[
        int,
        option(
            "EVAL_K_DEPTH",
            "Chunks asked for per query (doubled while they hold < 100 documents).",
            "--k-depth",
            min=1,
            max=1000,
        ),
    ] = 200,
    fusion: Annotated[
        str,
        option(
            "EVAL_FUSION",
            "Hybrid: convex (weighted sum of min-max normalised scores) or rrf (Reciprocal Rank Fusion).",
            "--fusion",
        ),
    ] = "convex",
    rrf_k: Annotated[int, option("EVAL_RRF_K", "Hybrid, rrf: the k of Reciprocal Rank Fusion.", "--rrf-k", min=0)] = 60,
    text_weight: Annotated[
        float, option("EVAL_TEXT_WEIGHT", "Hybrid: weight of the BM25 ranking.", "--text-weight", min=0)
    ] = 1.0,
    vector_weight: Annotated[
        float, option("EVAL_VECTOR_WEIGHT", "Hybrid: weight of the vector ranking.", "--vector-weight", min=0)
    ] = 1.0,
    candidates: Annotated[
        int | None,
        option(
            "EVAL_CANDIDATES",
            "Hybrid: candidates per side (at least the chunks asked for); default 4 x k.",
            "--candidates",
        ),
    ] = None,
    ef_search: Annotated[
        int | None,
        option("EVAL_EF_SEARCH", "Vector and hybrid: HNSW ef_search (raised to the chunks asked for).", "--ef-search"),
    ] = None,
    dataset: Annotated[
        str | None,
        option(
            "EVAL_DATASET",
            "Judged queries from this dataset's pairs examples, instead of --queries and --qrels.",
            "--dataset",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        option("EVAL_REPORT", "Write report.md and PNG charts into this directory.", "--report", file_okay=False),
    ] = None,
    tune: Annotated[
        bool,
        option(
            "EVAL_TUNE",
            "Choose hybrid's fusion settings on a dev split of the queries; compare them with the defaults on the "
            "rest.",
            "--tune",
        ),
    ] = False,
    save: Annotated[
        bool,
        option("EVAL_SAVE", "With --tune: store the chosen settings as the collection's search defaults.", "--save"),
    ] = False,
    dev_fraction: Annotated[
        float,
        option("EVAL_DEV_FRACTION", "With --tune: share of the queries tuned on.", "--dev-fraction", min=0, max=1),
    ] = 0.5,
    seed: Annotated[int, option("EVAL_SEED", "With --tune: seed of the dev/holdout split.", "--seed")] = 0,
    version: Annotated[
        int | None,
        option(
            "EVAL_VERSION",
            "Embedding version to search (its model embeds the queries); default: the active one.",
            "--version",
            min=1,
        ),
    ] = None,
    store: Annotated[
        bool,
        option(
            "EVAL_STORE",
            "Keep the completed run (memora.eval_run) for the console and GET /v1/collections/{name}/evaluations.",
            "--store/--no-store",
        ),
    ] = True,
) -> None:
    """Measure search quality on judged queries: nDCG@10, recall@10/100, MRR@10 and latency per mode."""
    from app.eval.repository import FusionParams
    from app.eval.service import parse_fusion, parse_modes

    params = FusionParams(parse_fusion(fusion), rrf_k, text_weight, vector_weight, candidates, ef_search, version)
    with engine(ctx) as made:
        run_eval(
            settings(ctx), made, collection, queries, qrels,
            modes=parse_modes(mode), depth=k_depth, params=params, as_json=as_json, dataset=dataset,
            report_dir=report, tune=tune, save=save, dev_fraction=dev_fraction, seed=seed, store=store,
        )  # fmt: skip


def run_eval(
    config: Settings,
    bind: Engine,
    collection: str,
    queries_path: Path | None,
    qrels_path: Path | None,
    *,
    as_json: bool,
    dataset: str | None = None,
    store: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate the judged queries (QUERIES_PATH and QRELS_PATH, or DATASET's pairs) with OPTIONS (those of
    app.eval.runner.evaluate), progress on stderr; print a table, or with AS_JSON one JSON object. With STORE keep
    the run and say its id on stderr. The summary."""
    from functools import partial

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from app.eval import runner
    from app.eval.runs.service import source_json

    runner.check_options(tune=options.get("tune", False), save=options.get("save", False),
                         version=options["params"].version)  # fmt: skip
    queries = runner.judged_queries(bind, queries_path, qrels_path, dataset)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:

        def step(description: str, total: int | None) -> Callable[[], None]:
            return partial(progress.advance, progress.add_task(description, total=total))

        evaluation = runner.evaluate(
            config, bind, collection, queries, step=step, store=store,
            source=source_json(queries_path, qrels_path, dataset), **options,
        )  # fmt: skip
    summary = evaluation.summary
    if as_json:
        print(json.dumps(summary))
    else:
        _print_tables(collection, f"dataset {dataset}" if dataset else "judged queries", len(queries), summary,
                      saved=options.get("save", False))  # fmt: skip
    if evaluation.run_id is not None:  # on stderr: stdout stays the table, or the one JSON object
        print(f"stored as evaluation run {evaluation.run_id} (console: /console/collections/{collection}/evaluations/"
              f"{evaluation.run_id})", file=sys.stderr, flush=True)  # fmt: skip
    return summary


def _print_tables(collection: str, source: str, queries: int, summary: dict[str, Any], *, saved: bool) -> None:
    from rich.console import Console

    # Wide enough for the table when the output goes to a file or a pipe.
    out = Console(width=None if sys.stdout.isatty() else 120)
    out.print(_table(f"{collection}: {queries} {source}", summary["modes"]))
    if "tune" in summary:
        out.print(_tune_table(summary["tune"]))
        if saved:
            out.print(f"saved as {collection}'s search defaults (collection metadata, key search_defaults)")
    if "report" in summary:
        out.print(f"report: {summary['report']}")


def _table(title: str, modes: dict[str, dict[str, float | int]]) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    columns = ["nDCG@10", "recall@10", "recall@100", "MRR@10", "p50 ms", "p95 ms", "queries"]
    table.add_column("mode")
    for column in columns:
        table.add_column(column, justify="right")
    for mode, figures in modes.items():
        quality = [f"{figures[key]:.4f}" for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10")]
        table.add_row(mode, *quality, f"{figures['p50_ms']:.1f}", f"{figures['p95_ms']:.1f}", str(figures["queries"]))
    return table


def _tune_table(tuning: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(
        title=f"hybrid tuned on {tuning['dev_queries']} dev queries ({tuning['tried']} settings, seed "
        f"{tuning['seed']}), checked on {tuning['holdout_queries']} held back; k {tuning['k']}",
        title_justify="left",
    )
    for column in ("setting", "fusion", "rrf_k", "text : vector", "candidates", "dev nDCG@10", "holdout nDCG@10"):
        table.add_column(column, justify="left" if column in ("setting", "fusion") else "right")
    for name in ("default", "best"):
        s = tuning[name]
        table.add_row(
            name, s["fusion"], str(s["rrf_k"]), f"{s['weights']['text']:g} : {s['weights']['vector']:g}",
            f"{s['candidates_factor']} x k", f"{tuning['dev'][name]['ndcg@10']:.4f}",
            f"{tuning['holdout'][name]['ndcg@10']:.4f}",
        )  # fmt: skip
    return table
