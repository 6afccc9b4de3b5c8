"""Evaluation runs as `memora eval` stores them and the console and GET /v1/collections/{name}/evaluations read them.

A run's params say how it was run; its summary is what it measured: what `memora eval --json` prints (each mode's
metrics under "modes"; "tune" and "report" when asked), plus "recall_curve" (each mode's mean recall@k for k = 1..100)
and "sweep" (the latency sweep's points; empty unless --report ran one). Rows are written once and never changed;
deleting the collection deletes its runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from app import cursors
from app.db.models import Collection, EvalRun
from app.errors import NotFoundError
from app.eval.runs import repository

MAX_PAGE = 100


def source_json(queries: Path | None, qrels: Path | None, dataset: str | None) -> dict[str, str]:
    """Where the judged queries came from: {"dataset": NAME}, or the files as given."""
    if dataset is not None:
        return {"dataset": dataset}
    return {"queries": str(queries), "qrels": str(qrels)}


def params_json(
    *,
    source: Mapping[str, str],
    queries: int,
    modes: Sequence[str],
    depth: int,
    fusion: Mapping[str, Any],
    version: int,
    model: str | None,
    sweep: bool,
    tune: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """How a run was run, as its row keeps it."""
    return {
        "source": dict(source),
        "queries": queries,
        "modes": list(modes),
        "k_depth": depth,
        "version": version,
        "model": model,  # the model that embedded the queries; None when no mode needed them (text)
        "fusion": dict(fusion),
        "sweep": sweep,
        "tune": None if tune is None else dict(tune),
    }


def summary_json(
    summary: Mapping[str, Any], curves: Mapping[str, Sequence[float]], sweep: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """What a run measured, as its row keeps it: SUMMARY (as --json prints it), the recall curves and the sweep."""
    return {**summary, "recall_curve": {mode: list(curve) for mode, curve in curves.items()}, "sweep": list(sweep)}


def record(db: Session, collection: Collection, params: dict[str, Any], summary: dict[str, Any]) -> EvalRun:
    """Store a completed run of COLLECTION."""
    return repository.insert(db, collection.id, params, summary)


def get(db: Session, collection: Collection, run_id: int) -> EvalRun:
    """Run RUN_ID of COLLECTION, or a 404 that names both."""
    row = repository.find(db, collection.id, run_id)
    if row is None:
        raise NotFoundError(f"collection {collection.name!r} has no evaluation run {run_id}")
    return row


def page(
    db: Session, collection: Collection, *, limit: int, cursor: str | None = None
) -> tuple[list[Row[Any]], str | None]:
    """One page of COLLECTION's runs newest first (id, created_at, params, modes), and the next (older) page's
    cursor."""
    before = cursors.decode(cursor, least=1) if cursor is not None else None
    rows = repository.page(db, collection.id, limit=limit + 1, before=before)
    return rows[:limit], cursors.encode(rows[limit - 1].id) if len(rows) > limit else None
