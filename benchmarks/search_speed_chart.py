"""How search cost grows with the collection: p50 of text and hybrid search against chunks, drawn from the JSON of
benchmarks/search_speed.py runs at several --rows (no measuring here).

    .venv/bin/python benchmarks/search_speed_chart.py [JSON ...] [--out docs/charts/search_scaling.png]

Without JSON arguments it reads benchmarks/results/search_speed-{10k,100k,1m}-preliminary.json, those there. One
line per method (Memora's search_text and search_hybrid, the posting-table BM25 and its RRF with HNSW) and query set
(keywords, questions, passages), chunks on a log scale; it also prints the figures as a Markdown table, for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the off-screen backend

ROOT = Path(__file__).resolve().parent.parent
METHODS = {"text": "memora.search_text", "hybrid": "memora.search_hybrid", "posting-table BM25": "posting BM25",
           "RRF(posting BM25, HNSW)": "RRF(posting BM25, HNSW)"}  # fmt: skip
COLOURS = {"keywords": "tab:blue", "questions": "tab:orange", "passages": "tab:green"}
STYLES = {
    "text": ("-", "o"),
    "hybrid": ("-", "s"),
    "posting-table BM25": (":", "o"),
    "RRF(posting BM25, HNSW)": (":", "s"),
}


def p50s(runs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[int, float]]:
    """p50 ms by (method, query set) and chunks."""
    found: dict[tuple[str, str], dict[int, float]] = {}
    for run in runs:
        for entry in run.get("by_query_set", []):
            if entry["method"] in METHODS:
                found.setdefault((entry["method"], entry["query_set"]), {})[run["data"]["chunks"]] = entry["p50_ms"]
    return found


def chart(
    lines: dict[tuple[str, str], dict[int, float]], runs: list[dict[str, Any]], out: Path, preliminary: bool
) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5.5))
    order = list(METHODS)
    for (method, query_set), points in sorted(lines.items(), key=lambda item: (order.index(item[0][0]), item[0][1])):
        sizes = sorted(points)
        style, marker = STYLES[method]
        ax.plot(sizes, [points[n] for n in sizes], linestyle=style, marker=marker, color=COLOURS[query_set],
                label=f"{METHODS[method]}, {query_set}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sorted({run["data"]["chunks"] for run in runs}))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("chunks in the collection (log scale)")
    ax.set_ylabel("p50 ms per query, k = 10 (log scale)")
    commits = ", ".join(sorted({run["machine"]["commit"] for run in runs}))
    note = ", preliminary" if preliminary else ""
    ax.set_title(f"Search cost against collection size (search_speed.py, {commits}{note})", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def table(lines: dict[tuple[str, str], dict[int, float]]) -> str:
    sizes = sorted({n for points in lines.values() for n in points})
    rows = [f"| method | query set | {' | '.join(f'{n:,}' for n in sizes)} |", "| --- | --- |" + " ---: |" * len(sizes)]
    for method in METHODS:
        for query_set in COLOURS:
            points = lines.get((method, query_set))
            if points:
                cells = " | ".join(f"{points[n]:.1f}" if n in points else "" for n in sizes)
                rows.append(f"| {METHODS[method]} | {query_set} | {cells} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="*", help="JSON written by search_speed.py --json")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/charts/search_scaling.png")
    args = parser.parse_args()
    default = [ROOT / f"benchmarks/results/search_speed-{size}-preliminary.json" for size in ("10k", "100k", "1m")]
    paths = args.results or [path for path in default if path.is_file()]
    runs = [json.loads(path.read_text()) for path in paths]
    runs = [run for run in runs if "by_query_set" in run]
    lines = p50s(runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(chart(lines, runs, args.out, any("preliminary" in path.name for path in paths)))
    print(table(lines))


if __name__ == "__main__":
    main()
