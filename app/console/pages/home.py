"""`/`, which points to the console, the console's home page, and its static files."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from sqlalchemy.orm import Session

from app.api.deps import SessionDep
from app.auth.principal import Role, current
from app.auth.rules import PUBLIC, needs
from app.collections import service as collections
from app.console.render import HEADERS, STATIC, page
from app.db.models import Collection, Dataset
from app.db.repository import all_named
from app.errors import NotFoundError
from app.training.datasets import service as datasets

router = APIRouter(include_in_schema=False)
_STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}


@router.get("/", dependencies=[PUBLIC])
def root(request: Request) -> HTMLResponse:
    """A page that links the console, the API docs and /healthz."""
    return page(request, "root.html")


@router.get("/console", name="console_home", dependencies=[needs(Role.read)])
def home(request: Request, db: SessionDep) -> HTMLResponse:
    """The collections and datasets the caller's key is granted."""
    return render_home(request, db)


def render_home(
    request: Request, db: Session, problems: list[dict[str, str]] | None = None, form: dict[str, Any] | None = None
) -> HTMLResponse:
    """The collections and datasets the caller's key is granted, with their documents by status and examples; and
    the form that makes a collection (with PROBLEMS by field, when a submitted FORM had some)."""
    principal = current(request)
    shown = [row for row in all_named(db, Collection) if principal.sees_collection(row.name)]
    sets = [row for row in all_named(db, Dataset) if principal.sees_dataset(row.name)]
    problems_by_field = {p["field"]: p["reason"] for p in problems or ()}
    return page(
        request,
        "home.html",
        status_code=422 if problems else 200,
        collections=collections.describe(db, shown),
        datasets=datasets.describe(db, sets),
        problems=problems_by_field,
        form=form or {},
    )


@router.get("/console/static/{name}", name="console_static", dependencies=[PUBLIC])
def static(name: str) -> FileResponse:
    """One of the console's own files."""
    if name not in _STATIC:
        raise NotFoundError(f"no such file: {name}")
    return FileResponse(STATIC / name, media_type=_STATIC[name], headers=HEADERS)
