"""Query adapters (app/adapters/) on public judged queries, and what training costs as the pairs grow.

Quality: a dataset is ingested with the local model (as benchmarks/search_quality.py does), then `memora embeddings
train`'s code trains an adapter on its judged queries and evaluates it on both held-out splits: by query, and by
document (held-out queries whose relevant documents no training query judges). nDCG@10 and recall@10 of vector and
hybrid search, base against adapted, with paired bootstrap intervals. Beside them a ceiling: an adapter trained on the
query split's held-out queries themselves and scored on them, the most a linear query map could gain there; and with
--grid, a grid of training recipes scored on the validation set carved from the training queries (never on the
held-out ones): whether a better recipe is within reach.

- squad: ../shared/data/squad/dev-v2.0.json: each paragraph a document, each answerable question a query whose one
  relevant document is its paragraph;
- nfcorpus: ../shared/data/nfcorpus: the judged test queries (only qrels/test.tsv is there) over the corpus.

Cost: the trainer alone on synthetic 384-dimension vectors (a query is its document's vector turned by a hidden
rotation, plus noise) at 1,000, 10,000 and 100,000 pairs: seconds per epoch over COST_EPOCHS epochs (no early stop;
no pull to the identity, which a rotation is far from), and peak memory (tracemalloc). A real run takes at most
Options().epochs epochs, fewer when its validation score stops rising.

    .venv/bin/python benchmarks/adapter_quality.py [--dataset squad nfcorpus] [--cost 1000 10000 100000] [--grid]
        [--seed 0] [--json benchmarks/results/adapter_quality.json] [--chart docs/charts/adapter_quality.png]
"""

from __future__ import annotations

import argparse
import itertools
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO_ROOT, code_version, console, machine, print_table, progress, scratch_database, write_json
from search_quality import DEFAULT_CORPUS, ingest_dataset, load_nfcorpus, load_squad
from sqlalchemy import Engine

from app.adapters import evaluate, service, splits
from app.adapters.train import Options, TrainingData, train
from app.config import Settings
from app.db.engine import make_engine
from app.eval import service as eval_service


def quality(name: str, seed: int, grid: bool = False) -> dict[str, Any]:
    """Ingest dataset NAME, train an adapter on its judged queries: the adapter's report, with ingest times."""
    corpus = DEFAULT_CORPUS[name]
    with console.status(f"reading {corpus}"):
        dataset = load_nfcorpus(corpus) if name == "nfcorpus" else load_squad(corpus)
    queries = eval_service.judged_queries(dataset.queries, dataset.qrels)
    with scratch_database(f"memora_bench_adapter_{name}") as db:
        settings = Settings(database_url=db.url)
        engine = make_engine(db.settings, "bench")
        try:
            ingested = ingest_dataset(settings, engine, dataset)
            with progress() as bar:

                def step(description: str, total: int | None) -> Any:
                    task = bar.add_task(description, total=total)
                    return lambda: bar.advance(task)

                began = time.perf_counter()
                prepared = service.prepare(engine, settings, name, queries, seed=seed, step=step)
                _, report = service.train_prepared(engine, prepared, Options(seed=seed), step)
                report["seconds"] = round(time.perf_counter() - began, 1)
                report["ceiling"] = ceiling(engine, prepared, seed, step)
                if grid:
                    report["grid"] = recipes(prepared, seed, step)
        finally:
            engine.dispose()
    return {"documents": len(dataset.documents), **ingested, **report}


def ceiling(engine: Engine, prepared: service.Prepared, seed: int, step: Any) -> dict[str, Any]:
    """The most a linear query map can gain on the query split's held-out queries: one trained on those queries
    themselves (no pull to the identity, no early stop) and scored on them. Not a result: a bound."""
    held = prepared.splits[0].held_out
    options = Options(seed=seed, penalty=0.0, learning_rate=1e-2, patience=Options().epochs)
    advance = step("ceiling: training on the held-out queries", options.epochs)
    trained = train(prepared.judged.data, held, options, lambda epoch, loss: advance(), validation=held)
    with engine.connect() as conn:
        results = evaluate.compare(conn, prepared.collection, prepared.number, [prepared.queries[i] for i in held],
                                   prepared.vectors[held], trained.weights, seed)  # fmt: skip
    return {"held_out": len(held), "epochs": trained.epochs, "best_epoch": trained.best_epoch, "results": results}


def recipes(prepared: service.Prepared, seed: int, step: Any) -> list[dict[str, Any]]:
    """Is a better recipe within reach? Each of a grid of settings (learning rate, temperature, penalty, hard
    negatives a step) trained on the query split's training queries as the product trains (20 epochs, no early stop),
    scored each epoch on the validation set the product carves from them: the identity's validation MRR, the best
    epoch's and the last's. The held-out queries are not looked at."""
    split = prepared.splits[0]
    inner = splits.by_query([prepared.queries[i] for i in split.train], seed + 1)
    fit = [split.train[i] for i in inner.train]
    held = [split.train[i] for i in inner.held_out]
    found = []
    grid = list(itertools.product((1e-3, 1e-2), (0.05, 0.1), (0.0, 0.1, 1.0), (1, 4)))
    advance = step("recipes on the validation set", len(grid))
    for rate, temperature, penalty, negatives in grid:
        options = Options(seed=seed, learning_rate=rate, temperature=temperature, penalty=penalty,
                          negatives=negatives, epochs=20, patience=20)  # fmt: skip
        trained = train(prepared.judged.data, fit, options, validation=held)
        scores = trained.validation_mrr
        found.append({"learning_rate": rate, "temperature": temperature, "penalty": penalty, "negatives": negatives,
                      "identity_mrr": round(scores[0], 4), "best_mrr": round(max(scores), 4),
                      "best_epoch": scores.index(max(scores)), "last_mrr": round(scores[-1], 4)})  # fmt: skip
        advance()
    return found


def rotated_pairs(pairs: int, d: int = 384, seed: int = 0) -> TrainingData:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(pairs, d)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rotation = np.linalg.qr(rng.normal(size=(d, d)))[0].astype(np.float32)
    queries = vectors @ rotation + 0.05 * rng.normal(size=(pairs, d)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    negatives = [list(map(int, rng.integers(0, pairs, 10))) for _ in range(pairs)]
    return TrainingData(queries.astype(np.float32), vectors, [[i] for i in range(pairs)], negatives)


COST_EPOCHS = 10


def cost(pairs: int, seed: int) -> dict[str, Any]:
    """Train on PAIRS synthetic pairs for COST_EPOCHS epochs: time, peak memory beyond the data, and whether it
    learned the rotation (validation MRR of the identity and of the best epoch)."""
    data = rotated_pairs(pairs, seed=seed)
    data_mb = (data.queries.nbytes + data.vectors.nbytes) / 2**20
    tracemalloc.start()
    with progress() as bar:
        options = Options(seed=seed, epochs=COST_EPOCHS, patience=COST_EPOCHS, penalty=0.0, learning_rate=1e-2)
        task = bar.add_task(f"{pairs:,} pairs", total=options.epochs)
        trained = train(data, range(pairs), options, lambda epoch, loss: bar.advance(task))
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {
        "pairs": pairs, "dimensions": 384, "seconds": round(trained.seconds, 2), "epochs": trained.epochs,
        "best_epoch": trained.best_epoch, "seconds_per_epoch": round(trained.seconds / trained.epochs, 3),
        "data_mb": round(data_mb, 1), "peak_training_mb": round(peak, 1),
        "validation_mrr": {"identity": round(trained.validation_mrr[0], 4),
                           "trained": round(max(trained.validation_mrr), 4)},
    }  # fmt: skip


def chart(runs: dict[str, dict[str, Any]], path: Path) -> None:
    """One adapter chart (app/adapters/evaluate.py) per dataset, side by side in one PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4 * len(runs)), layout="constrained")
    FigureCanvasAgg(figure)
    for row, (name, report) in enumerate(runs.items()):
        for column, split in enumerate(("query", "document")):
            axes = figure.add_subplot(len(runs), 2, 2 * row + column + 1)
            results = report["splits"][split]["results"]
            for offset, which, color in ((-0.2, "base", "#8c8c8c"), (0.2, "adapted", "#55a868")):
                points = [results[mode]["ndcg@10"][which] for mode in evaluate.MODES]
                means = np.asarray([p["mean"] for p in points])
                errors = [means - [p["low"] for p in points], [p["high"] for p in points] - means]
                axes.bar(np.arange(2) + offset, means, 0.4, yerr=errors, capsize=4, color=color, label=which)
            axes.set_xticks(range(2), evaluate.MODES)
            axes.set_title(f"{name}: held out by {split} ({report['splits'][split]['held_out']} queries)")
            axes.set_ylabel("nDCG@10")
            axes.legend(loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)


def _change(metric: dict[str, Any]) -> str:
    delta = metric["delta"]
    return f"{delta['mean']:+.4f} [{delta['low']:+.4f}, {delta['high']:+.4f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", nargs="*", choices=sorted(DEFAULT_CORPUS), default=["squad", "nfcorpus"])
    parser.add_argument("--cost", nargs="*", type=int, default=[1_000, 10_000, 100_000], help="pairs per cost run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", action="store_true", help="also train a grid of recipes, scored on validation")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "adapter_quality.json")
    parser.add_argument("--chart", type=Path, default=REPO_ROOT / "docs" / "charts" / "adapter_quality.png")
    args = parser.parse_args()
    for name in args.dataset:
        if not DEFAULT_CORPUS[name].exists():
            parser.error(f"{DEFAULT_CORPUS[name]}: not found (the data lives in ../shared, outside the repository)")
    facts = {**machine(), **code_version()}
    runs = {name: quality(name, args.seed, args.grid) for name in args.dataset}
    costs = [cost(pairs, args.seed) for pairs in args.cost]
    for name, report in runs.items():
        rows = []
        for split, found in [*report["splits"].items(), ("ceiling: query, trained on them", report["ceiling"])]:
            for mode, metrics in found["results"].items():
                n, r = metrics["ndcg@10"], metrics["recall@10"]
                rows.append([split, found["held_out"], mode, n["base"]["mean"], n["adapted"]["mean"], _change(n),
                             r["base"]["mean"], r["adapted"]["mean"], _change(r)])  # fmt: skip
        print_table(f"{name}: {report['queries']} judged queries, {report['pairs']} pairs",
                    ["held out by", "queries", "mode", "nDCG@10 base", "adapted", "change [95%]", "recall@10 base",
                     "adapted", "change [95%]"], rows)  # fmt: skip
    for name, report in runs.items():
        if "grid" in report:
            print_table(f"{name}: recipes on the validation set (MRR)", list(report["grid"][0]),
                        [list(row.values()) for row in report["grid"]])  # fmt: skip
    if costs:
        print_table("training cost (synthetic, 384 dimensions)", list(costs[0]), [list(c.values()) for c in costs])
    if runs and args.chart:
        chart(runs, args.chart)
    write_json(args.json, {**facts, "seed": args.seed, "quality": runs, "cost": costs})


if __name__ == "__main__":
    main()
