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
from app.eval import service
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
    queries_path: Path,
    qrels_path: Path,
    *,
    modes: list[str],
    depth: int,
    params: FusionParams,
    as_json: bool,
) -> dict[str, Any]:
    """Evaluate MODES on the judged queries; print a table, or with AS_JSON one JSON object; return the summary."""
    queries = service.judged_queries(service.load_queries(queries_path), service.load_qrels(qrels_path))
    embeddings, embed_ms = None, list[float]()
    err = Console(stderr=True)
    with _progress(err) as progress:
        if any(mode != "text" for mode in modes):
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
    summary = {"modes": {mode: result.summary() for mode, result in results.items()}}
    if as_json:
        print(json.dumps(summary))
    else:
        # Wide enough for the table when the output goes to a file or a pipe.
        Console(width=None if sys.stdout.isatty() else 120).print(
            _table(f"{collection}: {len(queries)} judged queries", summary["modes"])
        )
    return summary


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


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
