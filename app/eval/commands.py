"""What `memora eval` and `memora embed` do: progress on stderr, a table or one JSON object on stdout."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.collections import service as collections
from app.config import Settings
from app.embeddings.base import Embedder
from app.embeddings.registry import get_embedder
from app.errors import InvalidInputError
from app.eval import datasets, report, repository, service
from app.eval import tune as tune_service
from app.eval.repository import FusionParams


def collection_embedder(settings: Settings, engine: Engine, name: str) -> Embedder:
    """The embedder a collection's vectors come from, so queries land in the same space."""
    with Session(engine) as db:
        collection = collections.get(db, name)
        provider, model, dimensions = collection.embedding_provider, collection.embedding_model, collection.dimensions
    return get_embedder(provider, model, dimensions, settings)


def vector_literal(settings: Settings, engine: Engine, collection: str, text: str) -> str:
    """TEXT embedded by the collection's model, as pgvector's text form: [0.1,-0.2,...]."""
    vector = collection_embedder(settings, engine, collection).embed([text])[0]
    # str() of a float32 is its shortest round-tripping form, which pgvector reads back to the same float.
    return "[" + ",".join(str(value) for value in vector) + "]"


def run_eval(
    settings: Settings,
    engine: Engine,
    collection: str,
    queries_path: Path | None,
    qrels_path: Path | None,
    *,
    modes: list[str],
    depth: int,
    params: FusionParams,
    as_json: bool,
    dataset: str | None = None,
    report_dir: Path | None = None,
    tune: bool = False,
    save: bool = False,
    dev_fraction: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate MODES on the judged queries (QUERIES_PATH and QRELS_PATH, or DATASET's pairs); print a table, or
    with AS_JSON one JSON object; with TUNE also choose hybrid's settings (and with SAVE store them on the
    collection); with REPORT_DIR write report.md and charts there. Return the summary."""
    if save and not tune:
        raise InvalidInputError.for_field("--save", "stores what --tune chooses: give --tune too")
    queries = _judged_queries(engine, queries_path, qrels_path, dataset)
    if tune:
        tune_service.split_queries(queries, dev_fraction, seed)  # refuse a bad split before any work
    embeddings, embed_ms = None, list[float]()
    err = Console(stderr=True)
    sweep: list[report.SweepPoint] = []
    tuned: tune_service.TuneResult | None = None
    with _progress(err) as progress:
        if tune or any(mode != "text" for mode in modes):
            embedder = collection_embedder(settings, engine, collection)
            task = progress.add_task(f"embedding queries ({embedder.model})", total=None)
            embeddings, embed_ms = service.embed_queries(embedder, [q.text for q in queries], settings.embed_batch_size)
            progress.remove_task(task)
        results = {}
        with engine.connect() as conn:
            for mode in modes:
                task = progress.add_task(f"{mode} search", total=len(queries))
                results[mode] = service.evaluate_mode(
                    conn, mode, collection, queries, embeddings, embed_ms, depth=depth, params=params,
                    advance=partial(progress.advance, task),
                )  # fmt: skip
                conn.rollback()
            if report_dir is not None:
                configs = report.sweep_configs(modes, params)
                task = progress.add_task("latency sweep", total=len(configs) * len(queries))
                sweep = report.run_sweep(
                    conn, collection, queries, embeddings, embed_ms, configs, advance=partial(progress.advance, task)
                )
            if tune:
                assert embeddings is not None
                grid = tune_service.grid()
                dev_size = len(tune_service.split_queries(queries, dev_fraction, seed)[0])
                task = progress.add_task("tuning on the dev queries", total=len(grid) * dev_size)
                tuned = tune_service.tune(
                    conn, collection, queries, embeddings, embed_ms, dev_fraction=dev_fraction, seed=seed,
                    settings=grid, advance=partial(progress.advance, task),
                )  # fmt: skip
    summary: dict[str, Any] = {"modes": {mode: result.summary() for mode, result in results.items()}}
    if tuned is not None:
        summary["tune"] = tuned.summary()
        if save:
            summary["tune"]["saved"] = save_search_defaults(engine, collection, tune_service.search_defaults(tuned))
    if report_dir is not None:
        path = report.write_report(
            report_dir, collection=collection, queries=queries, results=results, sweep=sweep, params=params,
            depth=depth, tuning=summary.get("tune"),
        )  # fmt: skip
        summary["report"] = str(path)
    if as_json:
        print(json.dumps(summary))
    else:
        # Wide enough for the table when the output goes to a file or a pipe.
        out = Console(width=None if sys.stdout.isatty() else 120)
        source = f"dataset {dataset}" if dataset else "judged queries"
        out.print(_table(f"{collection}: {len(queries)} {source}", summary["modes"]))
        if "tune" in summary:
            out.print(_tune_table(summary["tune"]))
            if save:
                out.print(f"saved as {collection}'s search defaults (collection metadata, key search_defaults)")
        if "report" in summary:
            out.print(f"report: {summary['report']}")
    return summary


def save_search_defaults(engine: Engine, collection: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """Store DEFAULTS as collection.metadata["search_defaults"]; what was stored."""
    with Session(engine) as db, db.begin():
        return repository.save_search_defaults(db, collections.get(db, collection, lock=True), defaults)


def _judged_queries(
    engine: Engine, queries_path: Path | None, qrels_path: Path | None, dataset: str | None
) -> list[service.JudgedQuery]:
    """The judged queries of the files, or of the dataset; exactly one of the two must be given."""
    files = queries_path is not None or qrels_path is not None
    if dataset is not None and files:
        raise InvalidInputError.for_field("--dataset", "give --dataset or --queries and --qrels, not both")
    if dataset is not None:
        with Session(engine) as db:
            return datasets.dataset_queries(db, dataset)
    if queries_path is None or qrels_path is None:
        missing = "--queries" if queries_path is None else "--qrels"
        raise InvalidInputError.for_field(missing, "give --queries and --qrels (or --dataset NAME)")
    return service.judged_queries(service.load_queries(queries_path), service.load_qrels(qrels_path))


def _table(title: str, modes: dict[str, dict[str, float | int]]) -> Table:
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


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
