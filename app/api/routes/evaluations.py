"""/v1/collections/{name}/evaluations: the evaluation runs `memora eval` stored for a collection (app/eval/runs/)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api.reads import ReadSessionDep
from app.auth.principal import Role
from app.auth.rules import needs
from app.collections import service as collections
from app.eval.runs import service
from app.eval.runs.schemas import EvalRunItem, EvalRunOut, EvalRunPage

router = APIRouter(prefix="/v1/collections/{name}/evaluations", tags=["evaluations"])
READ = [needs(Role.read, collection="name")]
RunId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The run's id, as `memora eval` printed it.")]


@router.get("", response_model=EvalRunPage, dependencies=READ)
def list_runs(
    name: str,
    db: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
) -> EvalRunPage:
    """The collection's stored runs, newest first, a page at a time (keyset pagination): how each was run and each
    mode's metrics."""
    rows, next_cursor = service.page(db, collections.get(db, name), limit=limit, cursor=cursor)
    items = [EvalRunItem(id=r.id, created_at=r.created_at, params=r.params, modes=r.modes or {}) for r in rows]
    return EvalRunPage(items=items, next_cursor=next_cursor)


@router.get("/{run}", response_model=EvalRunOut, dependencies=READ)
def get_run(name: str, run: RunId, db: ReadSessionDep) -> EvalRunOut:
    """One run: how it was run and everything it measured (metrics, recall curves, the latency sweep, tuning)."""
    return EvalRunOut.model_validate(service.get(db, collections.get(db, name), run))
