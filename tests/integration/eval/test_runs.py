"""`memora eval` keeps each completed run (memora.eval_run), on the tiny BEIR collection: the stored figures are the
printed ones."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.db.models import Collection, EvalRun
from tests.beir_fixtures import QRELS, QUERIES, memora

STORED = re.compile(r"stored as evaluation run (\d+) \(console: /console/collections/beir/evaluations/(\d+)\)")
DEFAULT_FUSION = {"fusion": "convex", "rrf_k": 60, "text_weight": 1.0, "vector_weight": 1.0, "candidates": None,
                  "ef_search": None}  # fmt: skip


def stored_id(stderr: str) -> int:
    found = STORED.search(stderr)
    assert found is not None, stderr
    assert found.group(1) == found.group(2)
    return int(found.group(1))


def runs_of(engine: Engine) -> int:
    with Session(engine) as db:
        return int(db.scalar(select(func.count()).select_from(EvalRun)) or 0)


def test_a_completed_eval_is_stored_with_how_it_ran_and_what_it_printed(beir_db: str, beir_engine: Engine) -> None:
    args = ["eval", "-c", "beir", "--queries", str(QUERIES), "--qrels", str(QRELS), "--json"]

    result = memora(beir_db, *args)
    unstored = memora(beir_db, *args, "--mode", "text", "--no-store")

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert list(printed) == ["modes"]  # stdout as it was: the one JSON object
    run_id = stored_id(result.stderr)
    with Session(beir_engine) as db:
        collection = db.scalars(select(Collection).filter_by(name="beir")).one()
        run = db.get(EvalRun, (collection.id, run_id))
    assert run is not None
    assert run.params == {
        "source": {"queries": str(QUERIES), "qrels": str(QRELS)}, "queries": 5, "modes": ["text", "vector", "hybrid"],
        "k_depth": 200, "version": 1, "model": collection.embedding_model, "fusion": DEFAULT_FUSION, "sweep": False,
        "tune": None,
    }  # fmt: skip
    assert run.summary["modes"] == printed["modes"]
    assert run.summary["sweep"] == []
    for mode, figures in printed["modes"].items():
        curve = run.summary["recall_curve"][mode]
        assert len(curve) == 100
        assert curve == sorted(curve)
        assert curve[9] == pytest.approx(figures["recall@10"])
        assert curve[99] == pytest.approx(figures["recall@100"])
    assert unstored.returncode == 0, unstored.stderr
    assert "stored as" not in unstored.stderr
    assert runs_of(beir_engine) == 1


def test_a_run_printed_as_a_table_says_its_id_on_stderr_only(beir_db: str, beir_engine: Engine) -> None:
    result = memora(beir_db, "eval", "-c", "beir", "--queries", str(QUERIES), "--qrels", str(QRELS), "--mode", "text")

    assert result.returncode == 0, result.stderr
    assert "nDCG@10" in result.stdout
    assert "stored as" not in result.stdout
    assert stored_id(result.stderr) >= 1
    assert runs_of(beir_engine) == 1
