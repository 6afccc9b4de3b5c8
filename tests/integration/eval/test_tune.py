"""`memora eval --tune [--save]`: the dev/holdout split, the search over hybrid's settings, and the saved defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.cli.eval import run_eval
from app.collections import service as collections
from app.config import Settings
from app.db.query import Query
from app.errors import InvalidInputError
from app.eval import service, tune
from app.eval.repository import FusionParams
from app.eval.service import JudgedQuery, judged_queries, load_qrels, load_queries
from tests.beir_fixtures import QRELS, QUERIES


def evaluate(url: str, engine: Engine, **options: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {"modes": ["hybrid"], "depth": 200, "params": FusionParams(), "as_json": True}
    return run_eval(Settings(database_url=url), engine, "beir", QUERIES, QRELS, **(arguments | options))


SAVED_DEFAULTS = Query("SELECT metadata->'search_defaults' FROM memora.collection WHERE name = 'beir'")


def queries_named(*ids: str) -> list[JudgedQuery]:
    return [JudgedQuery(query_id, f"text of {query_id}", {"doc": 1}) for query_id in ids]


def test_split_is_deterministic_disjoint_and_sized_by_the_fraction() -> None:
    queries = queries_named(*(f"q{i}" for i in range(100)))

    dev, holdout = tune.split_queries(queries, 0.5, seed=0)
    again = tune.split_queries(list(reversed(queries)), 0.5, seed=0)
    other_seed = tune.split_queries(queries, 0.5, seed=1)
    small_dev, _ = tune.split_queries(queries, 0.2, seed=0)

    assert (len(dev), len(holdout)) == (50, 50)
    assert sorted(dev + holdout) == list(range(100))
    # The split follows the ids, not the order of the queries.
    assert {queries[i].id for i in dev} == {queries[99 - i].id for i in again[0]}
    assert set(other_seed[0]) != set(dev)
    assert len(small_dev) == 20
    assert tune.split_queries(queries_named("a", "b"), 0.01, seed=0)[0] != []  # one dev query at least
    assert len(tune.split_queries(queries_named("a", "b"), 0.99, seed=0)[1]) == 1  # and one held back
    with pytest.raises(InvalidInputError, match="at least 2 judged queries"):
        tune.split_queries(queries_named("a"), 0.5, seed=0)
    with pytest.raises(InvalidInputError, match="dev_fraction"):
        tune.split_queries(queries, 1.0, seed=0)


def test_grid_starts_with_the_defaults_and_covers_every_knob() -> None:
    settings = tune.grid()

    assert settings[0] == tune.DEFAULT == tune.Setting("convex", 60, 1.0, 1.0, 4)
    assert len(settings) == len(set(settings)) == 3 * 3 + 4 * 3 * 3
    assert {s.rrf_k for s in settings if s.fusion == "rrf"} == {10, 30, 60, 100}
    assert {s.candidates_factor for s in settings} == {2, 4, 8}
    assert {(s.text_weight, s.vector_weight) for s in settings} == {(1, 1), (1, 2), (2, 1)}
    assert tune.DEFAULT.params(10) == FusionParams("convex", 60, 1.0, 1.0, 40)


def test_tune_reports_best_and_defaults_on_the_holdout_and_saves_the_choice(
    beir_db: str, beir_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = evaluate(beir_db, beir_engine, tune=True, save=True, dev_fraction=0.6, seed=3)

    printed = json.loads(capsys.readouterr().out)
    tuned = summary["tune"]
    assert printed["tune"]["best"] == tuned["best"]
    assert (tuned["dev_queries"], tuned["holdout_queries"], tuned["tried"]) == (3, 2, 45)
    assert tuned["default"] == {"fusion": "convex", "rrf_k": 60, "weights": {"text": 1.0, "vector": 1.0},
                                "candidates_factor": 4}  # fmt: skip
    assert tuned["dev"]["best"]["ndcg@10"] >= tuned["dev"]["default"]["ndcg@10"]
    # The holdout figures are those of the settings run on the held-back queries alone.
    queries = judged_queries(load_queries(QUERIES), load_qrels(QRELS))
    _, holdout_at = tune.split_queries(queries, 0.6, seed=3)
    holdout = [queries[i] for i in holdout_at]
    with Session(beir_engine) as db:
        embedder = collections.embedder(db, Settings(database_url=beir_db), "beir")
    embeddings, embed_ms = service.embed_queries(embedder, [q.text for q in holdout], 64)
    best = tune.Setting(tuned["best"]["fusion"], tuned["best"]["rrf_k"], tuned["best"]["weights"]["text"],
                        tuned["best"]["weights"]["vector"], tuned["best"]["candidates_factor"])  # fmt: skip
    with beir_engine.connect() as conn:
        for name, setting in (("default", tune.DEFAULT), ("best", best)):
            result = service.evaluate_mode(conn, "hybrid", "beir", holdout, embeddings, embed_ms, depth=10,
                                           params=setting.params(10), documents=0)  # fmt: skip
            for key in ("ndcg@10", "recall@10", "mrr@10"):
                assert tuned["holdout"][name][key] == pytest.approx(result.summary()[key]), (name, key)
    with beir_engine.connect() as conn:
        saved = SAVED_DEFAULTS.run(conn).scalar()
    assert saved is not None
    assert {key: saved[key] for key in tuned["best"]} == tuned["best"]
    assert saved["tuned"]["holdout_ndcg@10"] == pytest.approx(tuned["holdout"]["best"]["ndcg@10"])
    assert saved["tuned"]["default_holdout_ndcg@10"] == pytest.approx(tuned["holdout"]["default"]["ndcg@10"])
    assert (saved["tuned"]["seed"], saved["tuned"]["dev_queries"]) == (3, 3)
    assert tuned["saved"] == saved


def test_tune_without_save_leaves_the_collection_alone_and_shows_in_the_report(
    beir_db: str, beir_engine: Engine, tmp_path: Path
) -> None:
    summary = evaluate(beir_db, beir_engine, tune=True, report_dir=tmp_path, as_json=False)

    with beir_engine.connect() as conn:
        metadata = Query("SELECT metadata FROM memora.collection WHERE name = 'beir'").run(conn).scalar_one()
    assert "search_defaults" not in metadata
    assert "saved" not in summary["tune"]
    markdown = (tmp_path / "report.md").read_text()
    assert "## Tuning" in markdown
    holdout = summary["tune"]["holdout"]
    assert f"| {holdout['default']['ndcg@10']:.4f} | {holdout['default']['recall@10']:.4f} |" in markdown
    assert f"| {holdout['best']['ndcg@10']:.4f} | {holdout['best']['recall@10']:.4f} |" in markdown


def test_save_needs_tune(beir_db: str, beir_engine: Engine) -> None:
    with pytest.raises(InvalidInputError, match="--tune"):
        evaluate(beir_db, beir_engine, save=True)
