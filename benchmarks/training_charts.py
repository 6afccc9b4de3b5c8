"""Charts of the training-data benchmarks, drawn from their JSON in benchmarks/results/ (no measuring here).

    .venv/bin/python benchmarks/training_charts.py [--results benchmarks/results] [--out docs/charts]

Writes export_memory.png (the exporter's RSS against bytes written, Memora beside the ORM baseline) and
batch_latency.png (first and last batch of an epoch per mode, beside OFFSET), which docs/benchmarks.md shows.
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


def export_memory(results: dict[str, Any], out: Path) -> Path:
    """RSS (MiB) of each exporting process over its run, sampled four times a second: the ORM holds every row
    before it writes one; Memora's exporter stays flat while the file grows."""
    labels = {"memora": "Memora (COPY, lines by PostgreSQL)", "orm-fetchall": "ORM .all() + json.dumps"}
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in results["results"]:
        if run["variant"] not in labels:
            continue
        samples = [(seconds, rss / 1024) for seconds, _, rss in run["samples"]]
        ax.plot(*zip(*samples, strict=True), marker=".", label=f"{labels[run['variant']]}, {run['examples']:,} ex.")
    ax.set_xlabel("seconds since the exporting process started")
    ax.set_ylabel("resident memory of the exporter (MiB)")
    ax.set_title("Export to OpenAI fine-tuning JSONL: the exporter's memory")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.grid(alpha=0.3)
    path = out / "export_memory.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def batch_latency(results: dict[str, Any], out: Path) -> Path:
    """First and last batch (ms) of an epoch over 1M examples, per mode; OFFSET's last page for contrast."""
    rows = results["batches"]
    names = [row["mode"] for row in rows]
    y = range(len(rows))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.barh([i + 0.2 for i in y], [row["first_ms"] for row in rows], height=0.4, label="first batch")
    ax.barh([i - 0.2 for i in y], [row["last_ms"] for row in rows], height=0.4, label="last batch")
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ms per batch of 1,000 (log scale)")
    ax.set_title("First and last batch of an epoch over 1M examples")
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    path = out / "batch_latency.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/charts")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for draw, name in ((export_memory, "export.json"), (batch_latency, "batches.json")):
        print(draw(json.loads((args.results / name).read_text()), args.out))


if __name__ == "__main__":
    main()
