"""The tables of an evaluation (app/eval/tables.py), shared by report.md and the console."""

from __future__ import annotations

from app.eval import tables
from tests.factories import eval_run_summary


def test_the_modes_table_formats_each_metric_as_report_md_does() -> None:
    summary = eval_run_summary()

    table = tables.modes_table(summary["modes"])

    assert table.headers[:2] == ["mode", "nDCG@10"]
    text = summary["modes"]["text"]
    assert table.rows[0] == ["text", "0.8123", f"{text['recall@10']:.4f}", f"{text['recall@100']:.4f}", "0.8123",
                             "1.5", "3.2", "5"]  # fmt: skip
    assert table.markdown()[1] == "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    assert table.markdown()[2].startswith("| text | 0.8123 |")


def test_the_recall_table_reads_the_curve_at_six_depths() -> None:
    table = tables.recall_table({"text": [k / 100 for k in range(1, 101)]})

    assert table.headers == ["mode", "recall@1", "recall@5", "recall@10", "recall@20", "recall@50", "recall@100"]
    assert table.rows == [["text", "0.0100", "0.0500", "0.1000", "0.2000", "0.5000", "1.0000"]]


def test_the_sweep_and_tuning_tables() -> None:
    sweep = tables.sweep_table([{"mode": "hybrid", "label": "cand 80", "p50_ms": 5.55, "ndcg@10": 0.51234}])
    side = {"ndcg@10": 0.5, "recall@10": 0.25}
    setting = {"fusion": "rrf", "rrf_k": 30, "weights": {"text": 1.0, "vector": 2.0}, "candidates_factor": 8}
    tuning = {"default": setting, "best": setting, "dev": {"default": side, "best": side},
              "holdout": {"default": side, "best": side}}  # fmt: skip

    assert sweep.markdown() == ["| mode | setting | p50 ms | nDCG@10 |", "| --- | --- | ---: | ---: |",
                                "| hybrid | cand 80 | 5.5 | 0.5123 |"]  # fmt: skip
    assert tables.tuning_table(tuning).rows[1] == ["best", "rrf", "30", "1 : 2", "8 x k", "0.5000", "0.5000", "0.2500"]
