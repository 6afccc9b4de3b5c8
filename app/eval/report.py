"""`memora eval --report DIR`: report.md with each mode's metrics, and PNG charts drawn by matplotlib.

Charts are drawn on `matplotlib.figure.Figure` objects with the Agg canvas, never through pyplot: no display is
needed and no global figure state is kept between reports. matplotlib is imported when a chart is drawn: it takes
most of a second, and `memora eval` without --report (and `memora embed`) should not wait for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from app.embeddings.base import Vectors
from app.eval import tables
from app.eval.metrics import recall_at
from app.eval.repository import FusionParams
from app.eval.service import JudgedQuery, ModeResult, evaluate_mode

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SWEEP_K = 10  # the sweep asks for 10 chunks, as an application showing 10 results does
EF_SEARCH = (16, 40, 100, 200)
CANDIDATE_FACTORS = (1, 2, 4, 8)  # hybrid candidates per side, times SWEEP_K
RECALL_KS = range(1, 101)
CHARTS = {"ndcg": "ndcg_at_10.png", "recall": "recall_at_k.png", "latency": "latency_vs_quality.png"}
_COLORS = {"text": "#4c72b0", "vector": "#dd8452", "hybrid": "#55a868"}


@dataclass(frozen=True)
class SweepPoint:
    """One setting of the latency/quality sweep: its p50 latency and nDCG@10."""

    mode: str
    label: str
    ef_search: int | None
    candidates: int | None
    p50_ms: float
    ndcg_10: float

    def as_json(self) -> dict[str, Any]:
        """The point as a stored run keeps it (its nDCG@10 named as the metric is everywhere else)."""
        return {"mode": self.mode, "label": self.label, "ef_search": self.ef_search, "candidates": self.candidates,
                "p50_ms": self.p50_ms, "ndcg@10": self.ndcg_10}  # fmt: skip


def sweep_configs(modes: Sequence[str], params: FusionParams, k: int = SWEEP_K) -> list[tuple[str, str, FusionParams]]:
    """(mode, label, params) of each sweep point: text once, ef_search for vector and hybrid, candidates for hybrid."""
    configs = [("text", "text", params)] if "text" in modes else []
    for mode in ("vector", "hybrid"):
        if mode in modes:
            configs += [(mode, f"ef {ef}", replace(params, ef_search=ef)) for ef in EF_SEARCH]
    if "hybrid" in modes:
        configs += [("hybrid", f"cand {f * k}", replace(params, candidates=f * k)) for f in CANDIDATE_FACTORS]
    return configs


def run_sweep(
    conn: Connection,
    collection: str,
    queries: Sequence[JudgedQuery],
    embeddings: Vectors | None,
    embed_ms: Sequence[float],
    configs: Sequence[tuple[str, str, FusionParams]],
    k: int = SWEEP_K,
    advance: Callable[[], None] | None = None,
) -> list[SweepPoint]:
    """Each config's p50 latency and nDCG@10 over K chunks (the documents a caller asking for K gets)."""
    points = []
    for mode, label, params in configs:
        result = evaluate_mode(
            conn, mode, collection, queries, embeddings, embed_ms, depth=k, params=params, documents=0, advance=advance
        )
        summary = result.summary()
        points.append(
            SweepPoint(mode, label, params.ef_search, params.candidates, float(summary["p50_ms"]),
                       float(summary["ndcg@10"]))
        )  # fmt: skip
        conn.rollback()
    return points


def recall_curve(result: ModeResult, queries: Sequence[JudgedQuery], ks: Sequence[int] = RECALL_KS) -> list[float]:
    """Mean recall@k over the queries for each k of KS."""
    if not result.rankings:
        return [0.0 for _ in ks]
    pairs = list(zip(result.rankings, queries, strict=True))
    return [sum(recall_at(ranking, query.judgments, k) for ranking, query in pairs) / len(pairs) for k in ks]


def write_report(
    directory: Path,
    *,
    collection: str,
    queries: Sequence[JudgedQuery],
    results: dict[str, ModeResult],
    sweep: Sequence[SweepPoint],
    params: FusionParams,
    depth: int,
    tuning: dict[str, Any] | None = None,
    curves: dict[str, list[float]] | None = None,
) -> Path:
    """Write report.md and its charts into DIRECTORY (created if missing); return the path of report.md. CURVES:
    each mode's recall curve, when the caller has them already."""
    directory.mkdir(parents=True, exist_ok=True)
    summaries = {mode: result.summary() for mode, result in results.items()}
    if curves is None:
        curves = {mode: recall_curve(result, queries) for mode, result in results.items()}
    _save(_ndcg_chart(summaries), directory / CHARTS["ndcg"])
    _save(_recall_chart(curves), directory / CHARTS["recall"])
    _save(_latency_chart(sweep), directory / CHARTS["latency"])
    path = directory / "report.md"
    path.write_text(_markdown(collection, queries, summaries, curves, sweep, params, depth, tuning), encoding="utf-8")
    return path


def _markdown(
    collection: str,
    queries: Sequence[JudgedQuery],
    summaries: dict[str, dict[str, float | int]],
    curves: dict[str, list[float]],
    sweep: Sequence[SweepPoint],
    params: FusionParams,
    depth: int,
    tuning: dict[str, Any] | None,
) -> str:
    hybrid = tables.hybrid_line(fusion_json(params))
    lines = [
        f"# Retrieval quality: {collection}",
        "",
        f"{len(queries)} judged queries, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. {depth} chunks asked for per query, "
        "deepened until they hold 100 documents; documents rank where their first chunk does. Latency: the SQL "
        "calls of a query plus its share of the embedding batch (vector, hybrid). Hybrid: " + hybrid + ".",
        "",
        *tables.modes_table(summaries).markdown(),
    ]
    lines += ["", "## nDCG@10 per mode", "", f"![nDCG@10 per mode]({CHARTS['ndcg']})", ""]
    lines += ["## Recall@k", "", f"![recall@k, k = 1..100]({CHARTS['recall']})", ""]
    lines += tables.recall_table(curves).markdown()
    lines += [
        "",
        "## Latency against quality",
        "",
        f"Each point asks for {SWEEP_K} chunks (nDCG@10 of their documents, as a caller asking for {SWEEP_K} gets "
        "them) with one setting changed from the hybrid settings above: HNSW `ef_search` for vector and hybrid (an "
        "HNSW scan searches at least as deep as the rows it must return, so values below k, or below hybrid's "
        "candidates, behave as those), and hybrid's candidates per side.",
        "",
        f"![p50 latency against nDCG@10]({CHARTS['latency']})",
        "",
        *tables.sweep_table([p.as_json() for p in sweep]).markdown(),
    ]
    if tuning is not None:
        lines += ["", "## Tuning", "", tables.tuning_line(tuning), "", *tables.tuning_table(tuning).markdown()]
    return "\n".join(lines) + "\n"


def fusion_json(params: FusionParams) -> dict[str, Any]:
    """Hybrid's settings of PARAMS by name (not the version searched), as a stored run keeps them."""
    fields = ("fusion", "rrf_k", "text_weight", "vector_weight", "candidates", "ef_search")
    return {name: getattr(params, name) for name in fields}


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> None:
    figure.savefig(path, format="png", dpi=100)


def _ndcg_chart(summaries: dict[str, dict[str, float | int]]) -> Figure:
    figure = _figure(6, 4)
    axes = figure.add_subplot()
    modes = list(summaries)
    values = [float(summaries[mode]["ndcg@10"]) for mode in modes]
    bars = axes.bar(modes, values, color=[_COLORS.get(mode, "#8172b3") for mode in modes])
    axes.bar_label(bars, labels=[f"{v:.4f}" for v in values], padding=2)
    axes.set_ylim(0, max([*values, 0.01]) * 1.2)
    axes.set_ylabel("nDCG@10")
    axes.set_title("nDCG@10 per mode")
    return figure


def _recall_chart(curves: dict[str, list[float]]) -> Figure:
    figure = _figure(6, 4)
    axes = figure.add_subplot()
    for mode, curve in curves.items():
        axes.plot(list(RECALL_KS), curve, label=mode, color=_COLORS.get(mode))
    axes.set_xscale("log")
    axes.set_xlim(1, RECALL_KS[-1])
    axes.set_ylim(0, 1)
    axes.set_xlabel("k (documents)")
    axes.set_ylabel("recall@k")
    axes.set_title("Recall@k")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return figure


def _latency_chart(sweep: Sequence[SweepPoint]) -> Figure:
    figure = _figure(7, 4.5)
    axes = figure.add_subplot()
    # One series per mode and knob (ef_search, candidates), joined in the order of the setting.
    for series in dict.fromkeys((p.mode, p.label.split()[0]) for p in sweep):
        points = [p for p in sweep if (p.mode, p.label.split()[0]) == series]
        mode, knob = series
        label = mode if knob == mode else f"{mode}, {'ef_search' if knob == 'ef' else 'candidates'}"
        axes.plot([p.p50_ms for p in points], [p.ndcg_10 for p in points], marker="o" if knob != "cand" else "s",
                  linestyle=":" if knob == "cand" else "-", label=label, color=_COLORS.get(mode))  # fmt: skip
        for p in points:
            axes.annotate(p.label, (p.p50_ms, p.ndcg_10), textcoords="offset points", xytext=(4, 3), fontsize=7)
    axes.set_xlabel("p50 latency (ms)")
    axes.set_ylabel(f"nDCG@10 (k {SWEEP_K})")
    axes.set_title("Latency against quality")
    axes.grid(True, alpha=0.3)
    if sweep:
        axes.legend()
    return figure
