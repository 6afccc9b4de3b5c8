"""`memora eval`: search quality on judged queries: nDCG@10, recall, MRR and latency per mode."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.options import settings

cli = typer.Typer()


@cli.command("eval")
def eval_command(
    ctx: typer.Context,
    collection: Annotated[
        str, typer.Option("--collection", "-c", envvar="MEMORA_COLLECTION", show_envvar=True,
                          help="Collection to search.")
    ],
    queries: Annotated[
        Path | None, typer.Option("--queries", envvar="MEMORA_EVAL_QUERIES", show_envvar=True, show_default=True,
                                  help='BEIR queries.jsonl: {"_id": ..., "text": ...} per line (or --dataset).')
    ] = None,
    qrels: Annotated[
        Path | None, typer.Option("--qrels", envvar="MEMORA_EVAL_QRELS", show_envvar=True, show_default=True,
                                  help="Judgments: BEIR qrels TSV (query-id, corpus-id, score) or TREC qrels.")
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", envvar="MEMORA_EVAL_MODES", show_envvar=True, show_default=True,
                          help="Comma-separated search modes: text, vector, hybrid.")
    ] = "text,vector,hybrid",
    as_json: Annotated[
        bool, typer.Option("--json", envvar="MEMORA_EVAL_JSON", show_envvar=True, show_default=True,
                           help="Print one JSON object instead of a table.")
    ] = False,
    k_depth: Annotated[
        int, typer.Option("--k-depth", envvar="MEMORA_EVAL_K_DEPTH", show_envvar=True, show_default=True, min=1,
                          max=1000, help="Chunks asked for per query (doubled while they hold < 100 documents).")
    ] = 200,
    fusion: Annotated[
        str, typer.Option("--fusion", envvar="MEMORA_EVAL_FUSION", show_envvar=True, show_default=True,
                          help="Hybrid: convex (weighted sum of min-max normalised scores) or rrf (Reciprocal Rank "
                          "Fusion).")
    ] = "convex",
    rrf_k: Annotated[
        int, typer.Option("--rrf-k", envvar="MEMORA_EVAL_RRF_K", show_envvar=True, show_default=True, min=0,
                          help="Hybrid, rrf: the k of Reciprocal Rank Fusion.")
    ] = 60,
    text_weight: Annotated[
        float, typer.Option("--text-weight", envvar="MEMORA_EVAL_TEXT_WEIGHT", show_envvar=True, show_default=True,
                            min=0, help="Hybrid: weight of the BM25 ranking.")
    ] = 1.0,
    vector_weight: Annotated[
        float, typer.Option("--vector-weight", envvar="MEMORA_EVAL_VECTOR_WEIGHT", show_envvar=True,
                            show_default=True, min=0, help="Hybrid: weight of the vector ranking.")
    ] = 1.0,
    candidates: Annotated[
        int | None, typer.Option("--candidates", envvar="MEMORA_EVAL_CANDIDATES", show_envvar=True, show_default=True,
                                 help="Hybrid: candidates per side (at least the chunks asked for); default 4 x k.")
    ] = None,
    ef_search: Annotated[
        int | None, typer.Option("--ef-search", envvar="MEMORA_EVAL_EF_SEARCH", show_envvar=True, show_default=True,
                                 help="Vector and hybrid: HNSW ef_search (raised to the chunks asked for).")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", envvar="MEMORA_EVAL_DATASET", show_envvar=True, show_default=True,
                                 help="Judged queries from this dataset's pairs examples, instead of --queries and "
                                 "--qrels.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", envvar="MEMORA_EVAL_REPORT", show_envvar=True, show_default=True,
                                  file_okay=False, help="Write report.md and PNG charts into this directory.")
    ] = None,
    tune: Annotated[
        bool, typer.Option("--tune", envvar="MEMORA_EVAL_TUNE", show_envvar=True, show_default=True,
                           help="Choose hybrid's fusion settings on a dev split of the queries; compare them with "
                           "the defaults on the rest.")
    ] = False,
    save: Annotated[
        bool, typer.Option("--save", envvar="MEMORA_EVAL_SAVE", show_envvar=True, show_default=True,
                           help="With --tune: store the chosen settings as the collection's search defaults.")
    ] = False,
    dev_fraction: Annotated[
        float, typer.Option("--dev-fraction", envvar="MEMORA_EVAL_DEV_FRACTION", show_envvar=True,
                            show_default=True, min=0, max=1, help="With --tune: share of the queries tuned on.")
    ] = 0.5,
    seed: Annotated[
        int, typer.Option("--seed", envvar="MEMORA_EVAL_SEED", show_envvar=True, show_default=True,
                          help="With --tune: seed of the dev/holdout split.")
    ] = 0,
) -> None:  # fmt: skip
    """Measure search quality on judged queries: nDCG@10, recall@10/100, MRR@10 and latency per mode."""
    from app.db.engine import make_engine
    from app.eval.commands import run_eval
    from app.eval.repository import FusionParams
    from app.eval.service import parse_fusion, parse_modes

    config = settings(ctx)
    params = FusionParams(parse_fusion(fusion), rrf_k, text_weight, vector_weight, candidates, ef_search)
    run_eval(
        config, make_engine(config, "cli"), collection, queries, qrels,
        modes=parse_modes(mode), depth=k_depth, params=params, as_json=as_json, dataset=dataset,
        report_dir=report, tune=tune, save=save, dev_fraction=dev_fraction, seed=seed,
    )  # fmt: skip
