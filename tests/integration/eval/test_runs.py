"""`memora eval` keeps each completed run (memora.eval_run), and the API and the console show what it measured, on
the tiny BEIR collection: the stored figures are the printed ones, and the console's tables are report.md's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.cli.eval import run_eval
from app.config import Settings
from app.db.models import Collection, EvalRun
from app.eval.repository import FusionParams
from tests.beir_fixtures import QRELS, QUERIES, memora

HTML = {"Accept": "text/html"}
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


def table_rows(markdown: str) -> list[list[str]]:
    """Every row of every table of report.md (headers too, not the alignment lines), as its cells."""
    rows = [line.strip("|").split("|") for line in markdown.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows if not set("".join(row)) <= set("-: ")]


def html_rows(html: str) -> list[list[str]]:
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", html, flags=re.S)
    return [[cell.strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)] for row in rows]


def test_the_api_and_the_console_show_a_run_with_its_sweep_and_tuning_as_report_md_does(
    beir_db: str, beir_engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "report"
    summary = run_eval(
        Settings(database_url=beir_db), beir_engine, "beir", QUERIES, QRELS, modes=["text", "vector", "hybrid"],
        depth=200, params=FusionParams(), as_json=True, report_dir=directory, tune=True,
    )  # fmt: skip
    run_id = stored_id(capsys.readouterr().err)

    with TestClient(create_app(Settings(database_url=beir_db), engine=beir_engine)) as client:
        listed = client.get("/v1/collections/beir/evaluations").json()
        stored = client.get(f"/v1/collections/beir/evaluations/{run_id}").json()
        page = client.get(f"/console/collections/beir/evaluations/{run_id}", headers=HTML)
        runs = client.get("/console/collections/beir/evaluations", headers=HTML)

    assert [item["id"] for item in listed["items"]] == [run_id]
    assert listed["items"][0]["modes"] == summary["modes"]
    assert listed["items"][0]["params"]["tune"] == {"dev_fraction": 0.5, "seed": 0, "save": False}
    assert stored["summary"]["modes"] == summary["modes"]
    assert stored["summary"]["tune"] == summary["tune"]
    assert stored["summary"]["report"] == str(directory / "report.md")
    assert [(p["mode"], p["label"]) for p in stored["summary"]["sweep"]][:2] == [("text", "text"), ("vector", "ef 16")]
    assert len(stored["summary"]["sweep"]) == 1 + 4 + 4 + 4
    assert stored["params"]["sweep"] is True

    assert page.status_code == 200
    shown = html_rows(page.text)
    for row in table_rows((directory / "report.md").read_text()):  # every table of report.md, cell for cell
        assert row in shown, row
    assert page.text.count('<svg class="chart"') == 3
    assert " style=" not in page.text
    assert f'/console/collections/beir/evaluations/{run_id}">Run {run_id}</a>' in runs.text
    modes_rows = [row[0] for row in shown if row and row[0] in summary["modes"] and len(row) == 8]
    assert modes_rows == ["text", "vector", "hybrid"]  # in the order of the run, as report.md has them
    hybrid = f"{summary['modes']['hybrid']['ndcg@10']:.4f}"
    assert re.search(rf'<tr data-run="{run_id}">.*?<td class="number">{hybrid}</td>', runs.text, flags=re.S)
