"""A collection's evaluation runs in the console: the list, newest first, and one run with report.md's tables and its
three charts as inline SVG (app/console/eval_charts.py), each chart followed by a table of its numbers."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from app.api.deps import SessionDep
from app.auth.principal import Role
from app.auth.rules import needs
from app.collections import service as collections
from app.console import eval_charts as charts
from app.console.render import page
from app.eval import tables
from app.eval.repository import MODES
from app.eval.runs import service as runs

router = APIRouter(include_in_schema=False)
READ = needs(Role.read, collection="name")
PAGE_SIZE = 20
RunId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/console/collections/{name}/evaluations", name="console_evaluations", dependencies=[READ])
def evaluations(
    request: Request, name: str, db: SessionDep, cursor: Annotated[str | None, Query(max_length=64)] = None
) -> HTMLResponse:
    """The collection's stored runs, newest first, a page at a time: when, on what, and nDCG@10 per mode."""
    collection = collections.get(db, name)
    rows, next_cursor = runs.page(db, collection, limit=PAGE_SIZE, cursor=cursor or None)
    seen = {mode for row in rows for mode in (row.modes or {})}
    items = [{"id": row.id, "created_at": row.created_at, "source": source(row.params), "params": row.params,
              "modes": row.modes or {}, "options": options(row.params)} for row in rows]  # fmt: skip
    return page(
        request, "evaluations.html", collection=collection, runs=items, next_cursor=next_cursor, cursor=cursor,
        modes=[mode for mode in MODES if mode in seen] + sorted(seen - set(MODES)),
    )  # fmt: skip


@router.get("/console/collections/{name}/evaluations/{run}", name="console_evaluation", dependencies=[READ])
def evaluation(request: Request, name: str, run: RunId, db: SessionDep) -> HTMLResponse:
    """One run: how it was run, each mode's metrics, and the charts of report.md with their numbers."""
    collection = collections.get(db, name)
    row = runs.get(db, collection, run)
    params, summary = row.params, row.summary
    order = [*params.get("modes", []), *MODES]  # jsonb keeps an object's keys in an order of its own
    modes: dict[str, Any] = in_order(summary.get("modes", {}), order)
    curves: dict[str, list[float]] = in_order(summary.get("recall_curve", {}), order)
    points = charts.latency_points({**summary, "modes": modes}, params)
    tuning = summary.get("tune")
    return page(
        request,
        "evaluation.html",
        collection=collection,
        run=row,
        params=params,
        source=source(params),
        hybrid=tables.hybrid_line(params["fusion"]) if params.get("fusion") else None,
        swept=bool(summary.get("sweep")),
        modes_table=tables.modes_table(modes),
        ndcg=(charts.ndcg_chart(modes), tables.ndcg_table(modes)),
        recall=(charts.recall_chart(curves), tables.recall_table(curves)) if curves else None,
        latency=(charts.latency_chart(points), tables.sweep_table(points)),
        tuning=(tables.tuning_line(tuning), tables.tuning_table(tuning)) if tuning else None,
    )


def in_order(figures: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """FIGURES by mode in ORDER (the run's), any other mode after them."""
    return {mode: figures[mode] for mode in [*dict.fromkeys(order), *sorted(figures)] if mode in figures}


def source(params: dict[str, Any]) -> str:
    """Where a run's judged queries came from, in a few words: the dataset, or the names of the files."""
    given = params.get("source") or {}
    if "dataset" in given:
        return f"dataset {given['dataset']}"
    if "queries" in given:
        return f"{PurePath(given['queries']).name} and {PurePath(given.get('qrels', '')).name}"
    return "judged queries"


def options(params: dict[str, Any]) -> str:
    """What a run did beyond the metrics: the latency sweep (--report), tuning (--tune), another version."""
    done = ["latency sweep"] if params.get("sweep") else []
    done += ["tuned" + (", saved" if (params.get("tune") or {}).get("save") else "")] if params.get("tune") else []
    return ", ".join(done)
