"""Retrieval metrics against values worked out by hand (trec_eval's definitions, as BEIR reports them)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from app.errors import InvalidInputError, UnreadableFileError
from app.eval.metrics import dcg, mean_scores, mrr_at, ndcg_at, percentile, recall_at, score
from app.eval.service import load_qrels, parse_modes

JUDGMENTS = {"a": 2, "b": 1, "c": 1, "z": 0}


def test_dcg_discounts_by_log2_of_rank_plus_one() -> None:
    assert dcg([3, 2, 0, 1]) == pytest.approx(3 / 1 + 2 / math.log2(3) + 0 + 1 / math.log2(5))


def test_ndcg_uses_grades_as_gains_and_the_ideal_from_the_judgments() -> None:
    ranking = ["x", "b", "a", "z"]  # relevant documents at ranks 2 and 3; c never found
    found = 1 / math.log2(3) + 2 / math.log2(4)
    ideal = 2 / 1 + 1 / math.log2(3) + 1 / math.log2(4)

    assert ndcg_at(ranking, JUDGMENTS) == pytest.approx(found / ideal)  # 1.6309 / 3.1309
    assert ndcg_at(ranking, JUDGMENTS) == pytest.approx(0.520909, abs=1e-6)
    assert ndcg_at(["a", "b", "c"], JUDGMENTS) == pytest.approx(1.0)


def test_ndcg_cuts_at_k() -> None:
    ranking = [f"x{i}" for i in range(10)] + ["a"]

    assert ndcg_at(ranking, JUDGMENTS, 10) == 0.0
    assert ndcg_at(ranking, JUDGMENTS, 11) > 0.0


def test_ndcg_is_zero_without_relevant_judgments() -> None:
    assert ndcg_at(["z"], {"z": 0}) == 0.0


def test_recall_counts_documents_graded_above_zero() -> None:
    assert recall_at(["z", "a", "x"], JUDGMENTS, 10) == pytest.approx(1 / 3)
    assert recall_at(["z", "x", "a", "b", "c"], JUDGMENTS, 2) == 0.0
    assert recall_at(["c", "b", "a"], JUDGMENTS, 100) == 1.0
    assert recall_at(["a"], {"z": 0}, 10) == 0.0


def test_mrr_is_the_reciprocal_rank_of_the_first_relevant_document() -> None:
    assert mrr_at(["z", "x", "c", "a"], JUDGMENTS) == pytest.approx(1 / 3)
    assert mrr_at([f"x{i}" for i in range(10)] + ["a"], JUDGMENTS) == 0.0


def test_mean_scores_average_over_queries() -> None:
    first = score(["a", "b", "c"], JUDGMENTS)  # perfect
    second = score(["x"], JUDGMENTS)  # nothing found

    means = mean_scores([first, second])

    assert means == pytest.approx({"ndcg@10": 0.5, "recall@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5})


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]

    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([], 50) == 0.0


def test_qrels_in_beir_and_trec_form(tmp_path: Path) -> None:
    beir = tmp_path / "test.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\nq2\td1\t1\n")
    trec = tmp_path / "test.qrel"
    trec.write_text("q1 0 d1 2\nq2 0 d3 1\n")

    assert load_qrels(beir) == {"q1": {"d1": 2, "d2": 0}, "q2": {"d1": 1}}
    assert load_qrels(trec) == {"q1": {"d1": 2}, "q2": {"d3": 1}}


def test_bad_qrels_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n")

    with pytest.raises(UnreadableFileError, match="line 2"):
        load_qrels(path)


def test_modes_are_checked() -> None:
    assert parse_modes("hybrid, text,hybrid") == ["hybrid", "text"]
    with pytest.raises(InvalidInputError, match="'semantic'"):
        parse_modes("text,semantic")
