"""Base against adapted on held-out queries: nDCG@10 and recall@10 of vector and hybrid search, with intervals.

Both are searched through the SQL API, in the base version: the adapted run sends W q where the base run sends q,
which is what searching the adapter's version does (it maps each query in SQL). Intervals are a paired bootstrap over
the held-out queries: 1,000 seeded resamples of the queries, each scored for base, adapted and their difference;
the 2.5th and 97.5th percentiles bound each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection

from app.eval.repository import FusionParams
from app.eval.service import JudgedQuery, evaluate_mode

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODES = ("vector", "hybrid")
METRICS = {"ndcg@10": "ndcg_10", "recall@10": "recall_10"}
RESAMPLES = 1000


def interval(values: np.ndarray, rng: np.random.Generator, samples: np.ndarray) -> dict[str, float]:
    means = values[samples].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": round(float(values.mean()), 4), "low": round(float(low), 4), "high": round(float(high), 4)}


def compare(
    conn: Connection,
    collection: str,
    version: int,
    queries: Sequence[JudgedQuery],
    vectors: np.ndarray,
    weights: np.ndarray,
    seed: int,
    advance: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """{mode: {metric: {base, adapted, delta: {mean, low, high}}}} over QUERIES (base vectors VECTORS)."""
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(queries), (RESAMPLES, len(queries)))
    params = FusionParams(version=version)
    runs = {"base": vectors, "adapted": vectors @ weights.T}
    found: dict[str, Any] = {}
    for mode in MODES:
        scores = {}
        for which, embeddings in runs.items():
            result = evaluate_mode(conn, mode, collection, queries, embeddings, [0.0] * len(queries), params=params,
                                   advance=advance)  # fmt: skip
            conn.rollback()
            scores[which] = result.scores
        found[mode] = {}
        for label, attribute in METRICS.items():
            base = np.asarray([getattr(s, attribute) for s in scores["base"]])
            adapted = np.asarray([getattr(s, attribute) for s in scores["adapted"]])
            found[mode][label] = {
                "base": interval(base, rng, samples),
                "adapted": interval(adapted, rng, samples),
                "delta": interval(adapted - base, rng, samples),
            }
    return found


def document_split_gains(report: dict[str, Any]) -> bool:
    """Whether the adapter's nDCG@10 gain on the document-disjoint queries is above 0 with its interval, in every
    mode: the CLI warns when it is not."""
    split = report["splits"]["document"]
    if not split.get("results"):
        return False
    return all(split["results"][mode]["ndcg@10"]["delta"]["low"] > 0 for mode in MODES)


def chart(report: dict[str, Any], path: Path) -> Path:
    """nDCG@10 of base and adapted, vector and hybrid, on each held-out set, with the bootstrap intervals."""
    figure = _figure()
    splits = [name for name in ("query", "document") if report["splits"][name].get("results")]
    for column, name in enumerate(splits, start=1):
        axes = figure.add_subplot(1, len(splits), column)
        results = report["splits"][name]["results"]
        for offset, which, color in ((-0.2, "base", "#8c8c8c"), (0.2, "adapted", "#55a868")):
            points = [results[mode]["ndcg@10"][which] for mode in MODES]
            means = [p["mean"] for p in points]
            errors = [[m - p["low"] for m, p in zip(means, points, strict=True)],
                      [p["high"] - m for m, p in zip(means, points, strict=True)]]  # fmt: skip
            axes.bar(np.arange(len(MODES)) + offset, means, 0.4, yerr=errors, capsize=4, color=color, label=which)
        axes.set_xticks(range(len(MODES)), MODES)
        held = report["splits"][name]["held_out"]
        axes.set_title(f"held out by {name} ({held} queries)")
        axes.set_ylabel("nDCG@10")
        axes.legend(loc="lower right")
    figure.savefig(path, format="png", dpi=100)
    return path


def _figure() -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4), layout="constrained")
    FigureCanvasAgg(figure)
    return figure
