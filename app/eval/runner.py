"""One evaluation run, as `memora eval` makes it: the judged queries (files or a dataset), their embeddings, every
mode's results, and with the options a latency sweep and its report, or tuned fusion settings (saved if asked); the
run stored (app/eval/runs/) when it completes, if asked.

Progress goes to STEP: step(description, total) starts a step and gives the function that advances it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.collections import service as collections
from app.config import Settings
from app.errors import InvalidInputError
from app.eval import datasets, report, repository, service
from app.eval import tune as tune_service
from app.eval.repository import FusionParams
from app.eval.runs import service as runs
from app.versions import service as versions

Step = Callable[[str, int | None], Callable[[], None]]


@dataclass(frozen=True)
class Evaluation:
    """What a run measured, as `memora eval --json` prints it, and the id of the run stored (None if not stored)."""

    summary: dict[str, Any]
    run_id: int | None = None


def check_options(*, tune: bool, save: bool, version: int | None = None) -> None:
    """Refuse options that do not go together, before any work."""
    if save and not tune:
        raise InvalidInputError.for_field("--save", "stores what --tune chooses: give --tune too")
    if tune and version is not None:
        raise InvalidInputError.for_field("--version", "--tune chooses the active version's defaults: drop one")


def judged_queries(
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


def evaluate(
    settings: Settings,
    engine: Engine,
    collection: str,
    queries: list[service.JudgedQuery],
    *,
    modes: list[str],
    depth: int,
    params: FusionParams,
    step: Step,
    report_dir: Path | None = None,
    tune: bool = False,
    save: bool = False,
    dev_fraction: float = 0.5,
    seed: int = 0,
    store: bool = False,
    source: Mapping[str, str] | None = None,
) -> Evaluation:
    """Evaluate MODES on QUERIES; with TUNE also choose hybrid's settings (and with SAVE store them on the
    collection); with REPORT_DIR write report.md and charts there; with STORE keep the run, saying that its queries
    came from SOURCE (runs.source_json)."""
    check_options(tune=tune, save=save, version=params.version)
    if tune:
        tune_service.split_queries(queries, dev_fraction, seed)  # refuse a bad split before any work
    version = params.version
    if store and version is None:  # the version searched is the one active now
        with Session(engine) as db:
            version = collections.get(db, collection).active_version
    model: str | None = None
    embeddings, embed_ms = None, list[float]()
    sweep: list[report.SweepPoint] = []
    tuned: tune_service.TuneResult | None = None
    if tune or any(mode != "text" for mode in modes):
        with Session(engine) as db:
            embedder = versions.embedder(db, settings, collection, params.version)
        model = embedder.model
        step(f"embedding queries ({embedder.model})", None)
        embeddings, embed_ms = service.embed_queries(embedder, [q.text for q in queries], settings.embed_batch_size)
    results = {}
    with engine.connect() as conn:
        for mode in modes:
            advance = step(f"{mode} search", len(queries))
            results[mode] = service.evaluate_mode(
                conn, mode, collection, queries, embeddings, embed_ms, depth=depth, params=params, advance=advance
            )
            conn.rollback()
        if report_dir is not None:
            configs = report.sweep_configs(modes, params)
            advance = step("latency sweep", len(configs) * len(queries))
            sweep = report.run_sweep(conn, collection, queries, embeddings, embed_ms, configs, advance=advance)
        if tune:
            assert embeddings is not None
            grid = tune_service.grid()
            dev_size = len(tune_service.split_queries(queries, dev_fraction, seed)[0])
            advance = step("tuning on the dev queries", len(grid) * dev_size)
            tuned = tune_service.tune(
                conn, collection, queries, embeddings, embed_ms, dev_fraction=dev_fraction, seed=seed,
                settings=grid, advance=advance,
            )  # fmt: skip
    summary: dict[str, Any] = {"modes": {mode: result.summary() for mode, result in results.items()}}
    kept = store or report_dir is not None
    curves = {mode: report.recall_curve(result, queries) for mode, result in results.items()} if kept else {}
    if tuned is not None:
        summary["tune"] = tuned.summary()
        if save:
            summary["tune"]["saved"] = save_search_defaults(engine, collection, tune_service.search_defaults(tuned))
    if report_dir is not None:
        path = report.write_report(
            report_dir, collection=collection, queries=queries, results=results, sweep=sweep, params=params,
            depth=depth, tuning=summary.get("tune"), curves=curves or None,
        )  # fmt: skip
        summary["report"] = str(path)
    if not store:
        return Evaluation(summary)
    assert version is not None
    tuning = {"dev_fraction": dev_fraction, "seed": seed, "save": save} if tune else None
    run_params = runs.params_json(
        source=source or {}, queries=len(queries), modes=modes, depth=depth, fusion=report.fusion_json(params),
        version=version, model=model, sweep=report_dir is not None, tune=tuning,
    )  # fmt: skip
    stored = runs.summary_json(summary, curves, [point.as_json() for point in sweep])
    return Evaluation(summary, _store(engine, collection, run_params, stored))


def _store(engine: Engine, collection: str, params: dict[str, Any], summary: dict[str, Any]) -> int:
    with Session(engine) as db, db.begin():
        return runs.record(db, collections.get(db, collection), params, summary).id


def save_search_defaults(engine: Engine, collection: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """Store DEFAULTS as collection.metadata["search_defaults"]; what was stored."""
    with Session(engine) as db, db.begin():
        return repository.save_search_defaults(db, collections.get(db, collection, lock=True), defaults)
