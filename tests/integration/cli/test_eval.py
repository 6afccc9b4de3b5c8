"""`memora eval` on a tiny BEIR-format dataset, and `memora embed`, as a user runs them."""

from __future__ import annotations

import json
import math

import pytest
from sqlalchemy import Engine

from app.db.query import Query
from app.eval.metrics import mean_scores, score
from app.eval.service import judged_queries, load_qrels, load_queries
from tests.beir_fixtures import QRELS, QUERIES, memora

SUMMARY_KEYS = {"ndcg@10", "recall@10", "recall@100", "mrr@10", "p50_ms", "p95_ms", "queries"}


def test_eval_prints_one_json_object_of_every_mode(beir_db: str) -> None:
    result = memora(beir_db, "eval", "-c", "beir", "--queries", str(QUERIES), "--qrels", str(QRELS), "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert list(summary) == ["modes"]
    assert list(summary["modes"]) == ["text", "vector", "hybrid"]
    for figures in summary["modes"].values():
        assert set(figures) == SUMMARY_KEYS
        assert figures["queries"] == 5  # q-unjudged has no judgments
        assert all(0 <= figures[key] <= 1 for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10"))
        assert 0 < figures["p50_ms"] <= figures["p95_ms"]


SEARCH_TEXT = Query("SELECT external_id FROM memora.search_text('beir', %(query)s, 50)")
SEARCH_VECTOR = Query(
    "SELECT vector_dims(%(vector)s::vector), "
    "(SELECT external_id FROM memora.search_vector('beir', %(vector)s::vector, 1))"
)


def test_text_mode_finds_the_relevant_documents(beir_db: str, beir_engine: Engine) -> None:
    result = memora(
        beir_db, "eval", "-c", "beir", "--queries", str(QUERIES), "--qrels", str(QRELS), "--mode", "text", "--json"
    )
    queries = judged_queries(load_queries(QUERIES), load_qrels(QRELS))
    with beir_engine.connect() as conn:
        rankings = {query.id: SEARCH_TEXT.run(conn, {"query": query.text}).scalars().all() for query in queries}

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)["modes"]["text"]
    for query in queries:  # each query's judged documents of the corpus come first
        in_corpus = {doc for doc in query.judgments if doc != "not-in-corpus"}
        assert set(rankings[query.id][: len(in_corpus)]) == in_corpus, query.id
    expected = mean_scores([score(list(dict.fromkeys(rankings[q.id])), q.judgments) for q in queries])
    assert figures["ndcg@10"] == pytest.approx(expected["ndcg@10"])
    assert figures["mrr@10"] == pytest.approx(1.0)
    assert figures["recall@10"] == pytest.approx((4 + 0.5) / 5)  # q-comet's second document is not in the corpus
    assert figures["ndcg@10"] > 0.8


def test_eval_table_and_fusion_options(beir_db: str) -> None:
    result = memora(
        beir_db, "eval", "-c", "beir", "--queries", str(QUERIES), "--qrels", str(QRELS), "--mode", "hybrid",
        "--fusion", "rrf", "--rrf-k", "10", "--text-weight", "2", "--candidates", "20", "--ef-search", "50",
        "--k-depth", "15",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "nDCG@10" in result.stdout
    assert "hybrid" in result.stdout
    assert "text" not in result.stdout.split("nDCG@10", 1)[1]


def test_eval_rejects_an_unknown_mode_or_fusion_and_a_missing_collection(beir_db: str) -> None:
    args = ["--queries", str(QUERIES), "--qrels", str(QRELS)]
    bad_mode = memora(beir_db, "eval", "-c", "beir", *args, "--mode", "text,semantic")
    bad_fusion = memora(beir_db, "eval", "-c", "beir", *args, "--mode", "hybrid", "--fusion", "borda")
    missing = memora(beir_db, "eval", "-c", "nowhere", *args, "--mode", "text")

    assert bad_mode.returncode == 1
    assert bad_mode.stderr.startswith("error: mode: 'semantic'")
    assert bad_fusion.returncode == 1
    assert bad_fusion.stderr.startswith("error: fusion: 'borda'")
    assert missing.returncode == 1
    assert "nowhere" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_embed_prints_a_vector_psql_can_use(beir_db: str, beir_engine: Engine) -> None:
    result = memora(beir_db, "embed", "volcano lava eruption", "-c", "beir")

    assert result.returncode == 0, result.stderr
    literal = result.stdout.strip()
    values = [float(part) for part in literal.strip("[]").split(",")]
    assert len(values) == 64
    assert math.fsum(v * v for v in values) == pytest.approx(1.0, abs=1e-5)
    with beir_engine.connect() as conn:
        row = SEARCH_VECTOR.run(conn, {"vector": literal}).one()
    assert tuple(row) == (64, "volcano-1")


def test_a_shallow_depth_is_deepened_until_the_documents_are_found(beir_db: str) -> None:
    args = ["eval", "-c", "beir", "--queries", str(QUERIES), "--qrels", str(QRELS), "--mode", "text,vector", "--json"]

    default = json.loads(memora(beir_db, *args).stdout)["modes"]
    shallow = json.loads(memora(beir_db, *args, "--k-depth", "1").stdout)["modes"]

    for mode in ("text", "vector"):
        assert shallow[mode]["recall@100"] == default[mode]["recall@100"]
        assert shallow[mode]["ndcg@10"] == pytest.approx(default[mode]["ndcg@10"])
    assert shallow["vector"]["recall@100"] == pytest.approx((4 + 0.5) / 5)  # every document of the corpus ranked


def test_eval_of_a_version_searches_it_and_an_unknown_one_or_tuning_it_is_refused(beir_db: str) -> None:
    args = ["eval", "-c", "beir", "--queries", str(QUERIES), "--qrels", str(QRELS), "--mode", "vector", "--json"]
    active = memora(beir_db, *args)
    pinned = memora(beir_db, *args, "--version", "1")
    missing = memora(beir_db, *args, "--version", "9")
    tuned = memora(beir_db, *args, "--version", "1", "--tune")

    assert pinned.returncode == 0, pinned.stderr
    ndcg = [json.loads(r.stdout)["modes"]["vector"]["ndcg@10"] for r in (active, pinned)]
    assert ndcg[0] == ndcg[1]
    assert missing.returncode == 1
    assert "no embedding version 9" in missing.stderr
    assert tuned.returncode == 1
    assert tuned.stderr.startswith("error: --version:")
