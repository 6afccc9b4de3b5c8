"""`memora eval --report DIR` and `memora eval --dataset NAME`, through app.cli.eval on a tiny BEIR collection."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from app.cli.eval import run_eval
from app.config import Settings
from app.db.query import Query
from app.errors import InvalidInputError, NotFoundError
from app.eval import report
from app.eval.datasets import relevant_documents
from app.eval.metrics import recall_at
from app.eval.repository import FusionParams
from app.eval.service import judged_queries, load_qrels, load_queries
from tests.beir_fixtures import QRELS, QUERIES, memora

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def evaluate(url: str, engine: Engine, **options: Any) -> dict[str, Any]:
    files = {} if "dataset" in options else {"queries_path": QUERIES, "qrels_path": QRELS}
    arguments: dict[str, Any] = {
        "modes": ["text", "vector", "hybrid"], "depth": 200, "params": FusionParams(), "as_json": True,
    } | files | options  # fmt: skip
    return run_eval(Settings(database_url=url), engine, "beir", arguments.pop("queries_path", None),
                    arguments.pop("qrels_path", None), **arguments)  # fmt: skip


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_report_writes_markdown_and_charts_with_the_computed_figures(
    beir_db: str, beir_engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "report"
    summary = evaluate(beir_db, beir_engine, report_dir=directory)

    printed = json.loads(capsys.readouterr().out)
    assert printed["report"] == str(directory / "report.md")
    assert printed["modes"] == summary["modes"]
    markdown = (directory / "report.md").read_text()
    for name in report.CHARTS.values():
        width, height = png_size(directory / name)
        assert 300 <= width <= 2000
        assert 200 <= height <= 2000
        assert (directory / name).stat().st_size > 5000
        assert f"]({name})" in markdown
    for mode, figures in summary["modes"].items():
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {mode} | {figures['ndcg@10']:.4f}"))
        for key in ("recall@10", "recall@100", "mrr@10"):
            assert f"{figures[key]:.4f}" in row
        assert f"| {figures['p50_ms']:.1f} | {figures['p95_ms']:.1f} | 5 |" in row
    assert summary["modes"]["text"]["ndcg@10"] > 0.8
    # Every sweep point is a row: text once, 4 ef_search each for vector and hybrid, 4 candidate depths.
    sweep_rows = [line for line in markdown.split("## Latency against quality")[1].splitlines() if line[:3] in
                  ("| t", "| v", "| h")]  # fmt: skip
    assert len(sweep_rows) == 1 + 4 + 4 + 4
    assert "| hybrid | cand 80 |" in markdown
    assert "## Tuning" not in markdown


def test_recall_curve_is_the_mean_recall_of_the_rankings(beir_db: str, beir_engine: Engine, tmp_path: Path) -> None:
    from app.eval import service

    queries = judged_queries(load_queries(QUERIES), load_qrels(QRELS))
    with beir_engine.connect() as conn:
        result = service.evaluate_mode(conn, "text", "beir", queries, None, [], depth=200)
    search = Query("SELECT external_id FROM memora.search_text('beir', %(query)s, 200)")
    with beir_engine.connect() as conn:
        rankings = [list(dict.fromkeys(search.run(conn, {"query": q.text}).scalars())) for q in queries]

    curve = report.recall_curve(result, queries)

    assert len(curve) == 100
    assert curve == sorted(curve)  # recall never falls as k grows
    for k in (1, 2, 10, 100):
        expected = sum(recall_at(r, q.judgments, k) for r, q in zip(rankings, queries, strict=True)) / len(queries)
        assert curve[k - 1] == pytest.approx(expected)
    assert curve[-1] == pytest.approx((4 + 0.5) / 5)  # q-comet's second document is not in the corpus


def pairs_file(path: Path) -> Path:
    """The fixture's judgments as pairs examples: one per relevant document in the corpus (named by source), and
    the grades in metadata.relevant."""
    queries, qrels = load_queries(QUERIES), load_qrels(QRELS)
    lines = []
    for query_id, judgments in qrels.items():
        for document in judgments:
            if document == "not-in-corpus":
                continue
            lines.append({"query": queries[query_id], "positive": f"the text of {document}",
                          "source": {"collection": "beir", "external_id": document},
                          "metadata": {"relevant": judgments}})  # fmt: skip
    lines.append({"query": "a query with nothing relevant", "positive": "nothing"})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_eval_of_a_pairs_dataset_equals_eval_of_the_files(
    beir_db: str, beir_engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    created = memora(beir_db, "dataset", "create", "beir-eval", "--task", "pairs")
    imported = memora(beir_db, "dataset", "import", "beir-eval", str(pairs_file(tmp_path / "pairs.jsonl")), "--json")
    assert created.returncode == 0, created.stderr
    assert imported.returncode == 0, imported.stdout + imported.stderr

    from_files = evaluate(beir_db, beir_engine, modes=["text", "vector"])
    from_dataset = evaluate(beir_db, beir_engine, modes=["text", "vector"], dataset="beir-eval")

    for mode in ("text", "vector"):
        assert from_dataset["modes"][mode]["queries"] == 5  # the query without relevant documents is left out
        for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10"):
            assert from_dataset["modes"][mode][key] == pytest.approx(from_files["modes"][mode][key]), (mode, key)


def test_relevant_documents_reads_lists_objects_and_the_source() -> None:
    assert relevant_documents(["a", "b"], None) == {"a": 1, "b": 1}
    assert relevant_documents({"a": 2, "b": 0, "c": True}, "a") == {"a": 2, "b": 0}
    assert relevant_documents(None, "doc-7") == {"doc-7": 1}
    assert relevant_documents("doc-1", "doc-7") == {"doc-1": 1, "doc-7": 1}


def test_eval_refuses_a_missing_dataset_and_ambiguous_input(beir_db: str, beir_engine: Engine) -> None:
    with pytest.raises(NotFoundError, match="no dataset named 'nowhere'"):
        evaluate(beir_db, beir_engine, dataset="nowhere")
    with pytest.raises(InvalidInputError, match="not both"):
        evaluate(beir_db, beir_engine, dataset="nowhere", queries_path=QUERIES, qrels_path=QRELS)
    with pytest.raises(InvalidInputError, match="--qrels"):
        evaluate(beir_db, beir_engine, qrels_path=None)
    memora(beir_db, "dataset", "create", "empty-pairs", "--task", "pairs")
    with pytest.raises(InvalidInputError, match="no pairs examples with relevant documents"):
        evaluate(beir_db, beir_engine, dataset="empty-pairs")
