"""The queries of stored evaluation runs: write one, read one, read a collection's newest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from app.db.models import EvalRun


def insert(db: Session, collection_id: int, params: dict[str, Any], summary: dict[str, Any]) -> EvalRun:
    """Store one run; the row with its id and created_at."""
    row = EvalRun(collection_id=collection_id, params=params, summary=summary)
    db.add(row)
    db.flush()
    db.refresh(row)
    return row


def find(db: Session, collection_id: int, run_id: int) -> EvalRun | None:
    return db.get(EvalRun, (collection_id, run_id))


def page(db: Session, collection_id: int, *, limit: int, before: int | None = None) -> list[Row[Any]]:
    """Up to LIMIT of the collection's runs, newest first (by id), older than run BEFORE when given: id, created_at,
    params and the metrics of each mode (modes), not the curves and sweep of the whole summary."""
    query = (
        select(EvalRun.id, EvalRun.created_at, EvalRun.params, EvalRun.summary["modes"].label("modes"))
        .where(EvalRun.collection_id == collection_id)
        .order_by(EvalRun.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(EvalRun.id < before)
    return list(db.execute(query))
