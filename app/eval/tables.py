"""The tables of an evaluation, as report.md and the console show them: one function per table, from the figures as
`memora eval --json` prints them and a stored run keeps them (app/eval/runs/), so the two cannot disagree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RECALL_KS = (1, 5, 10, 20, 50, 100)  # the columns of the recall table (the curve has every k to 100)
Figures = Mapping[str, float | int]


@dataclass(frozen=True)
class Table:
    """Column headers, which columns hold numbers (aligned right), and the rows as formatted text."""

    headers: list[str]
    numeric: list[bool]
    rows: list[list[str]]

    def markdown(self) -> list[str]:
        """The table as Markdown lines."""
        lines = ["| " + " | ".join(self.headers) + " |"]
        lines.append("| " + " | ".join("---:" if right else "---" for right in self.numeric) + " |")
        return lines + ["| " + " | ".join(row) + " |" for row in self.rows]


def modes_table(modes: Mapping[str, Figures]) -> Table:
    """Each mode's metrics, latency and queries."""
    headers = ["mode", "nDCG@10", "recall@10", "recall@100", "MRR@10", "p50 ms", "p95 ms", "queries"]
    rows = [
        [mode, *(f"{s[key]:.4f}" for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10")),
         f"{s['p50_ms']:.1f}", f"{s['p95_ms']:.1f}", str(s["queries"])]
        for mode, s in modes.items()
    ]  # fmt: skip
    return Table(headers, [False] + [True] * 7, rows)


def ndcg_table(modes: Mapping[str, Figures]) -> Table:
    """nDCG@10 per mode: the numbers of the bar chart."""
    return Table(["mode", "nDCG@10"], [False, True], [[mode, f"{s['ndcg@10']:.4f}"] for mode, s in modes.items()])


def recall_table(curves: Mapping[str, Sequence[float]]) -> Table:
    """Mean recall@k at k = 1, 5, 10, 20, 50, 100 per mode, read off the curves (k = 1..100)."""
    headers = ["mode", *(f"recall@{k}" for k in RECALL_KS)]
    rows = [[mode, *(f"{curve[k - 1]:.4f}" for k in RECALL_KS)] for mode, curve in curves.items()]
    return Table(headers, [False] + [True] * len(RECALL_KS), rows)


def sweep_table(points: Sequence[Mapping[str, Any]]) -> Table:
    """Each point of the latency sweep: mode, setting, p50 ms, nDCG@10."""
    rows = [[p["mode"], p["label"], f"{p['p50_ms']:.1f}", f"{p['ndcg@10']:.4f}"] for p in points]
    return Table(["mode", "setting", "p50 ms", "nDCG@10"], [False, False, True, True], rows)


def tuning_table(tuning: Mapping[str, Any]) -> Table:
    """The defaults and the best setting of --tune, on the dev and the held-back queries."""
    headers = ["setting", "fusion", "rrf_k", "text : vector", "candidates", "dev nDCG@10", "holdout nDCG@10",
               "holdout recall@10"]  # fmt: skip
    rows = []
    for name in ("default", "best"):
        s = tuning[name]
        rows.append(
            [name, s["fusion"], str(s["rrf_k"]), f"{s['weights']['text']:g} : {s['weights']['vector']:g}",
             f"{s['candidates_factor']} x k", f"{tuning['dev'][name]['ndcg@10']:.4f}",
             f"{tuning['holdout'][name]['ndcg@10']:.4f}", f"{tuning['holdout'][name]['recall@10']:.4f}"]
        )  # fmt: skip
    return Table(headers, [False, False, True, False, True, True, True, True], rows)


def tuning_line(tuning: Mapping[str, Any]) -> str:
    """How --tune chose: settings tried, the split, k."""
    return (
        f"{tuning['tried']} hybrid settings tried on {tuning['dev_queries']} dev queries (seed {tuning['seed']}, dev "
        f"fraction {tuning['dev_fraction']:g}); the best by nDCG@10 on dev, checked on the "
        f"{tuning['holdout_queries']} held-back queries, each at k {tuning['k']}."
    )


def hybrid_line(fusion: Mapping[str, Any]) -> str:
    """Hybrid search's settings in words, from FUSION (fusion, rrf_k, text_weight, vector_weight, candidates,
    ef_search; None for the function's default)."""
    return (
        f"fusion {fusion['fusion']}, rrf_k {fusion['rrf_k']}, weights text {fusion['text_weight']:g} : vector "
        f"{fusion['vector_weight']:g}, candidates {fusion['candidates'] or 'default (4 x k)'}, "
        f"ef_search {fusion['ef_search'] or 'default'}"
    )
