"""A dataset's snapshots in the console: the list with a download of each, taking a new one (write), and the diff
of two: how many examples were added, removed or moved to another split, and those examples a page at a time."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.api.deps import SessionDep
from app.auth.principal import Role
from app.auth.rules import needs
from app.console.examples import by_field, label_of
from app.console.render import page
from app.console.session import check_form
from app.errors import ConflictError, InvalidInputError, NotFoundError, problems_of
from app.training.datasets import service as datasets
from app.training.snapshots import service as snapshots
from app.training.snapshots.schemas import CHANGES, SnapshotCreate, SnapshotDiff, SnapshotOut

router = APIRouter(include_in_schema=False)
READ = needs(Role.read, dataset="name")
WRITE = needs(Role.write, dataset="name")
CSRF = Depends(check_form)
PAGE_SIZE = 50


@router.get("/console/datasets/{name}/snapshots", name="console_dataset_snapshots", dependencies=[READ])
def snapshot_list(
    request: Request, name: str, db: SessionDep, created: Annotated[str | None, Query(max_length=200)] = None
) -> HTMLResponse:
    """The dataset's snapshots, oldest first, and the forms that take one and compare two."""
    return render_snapshots(request, db, name, created=created)


def render_snapshots(
    request: Request,
    db: Session,
    name: str,
    *,
    created: str | None = None,
    problems: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    dataset = datasets.get(db, name)
    listed = [SnapshotOut.model_validate(s) for s in snapshots.all_of(db, dataset)]
    return page(
        request,
        "dataset_snapshots.html",
        status_code=status_code,
        dataset=dataset,
        snapshots=listed,
        created=created,
        problems=problems or {},
        form=form or {},
        chosen=_latest_two([s.name for s in listed]),
    )


def _latest_two(names: list[str]) -> dict[str, str]:
    """The diff form's default: the newest snapshot against the one before it."""
    return {"snapshot": names[-1] if names else "", "against": names[-2] if len(names) > 1 else ""}


@router.post("/console/datasets/{name}/snapshots", name="console_dataset_snapshot_create", dependencies=[WRITE, CSRF])
def create(
    request: Request,
    name: str,
    db: SessionDep,
    snapshot: Annotated[str, Form(max_length=1000)] = "",
    description: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    """Freeze the live examples as snapshot SNAPSHOT, as POST /v1/datasets/{name}/snapshots does."""
    dataset = datasets.get(db, name, keep=True)
    form = {"snapshot": snapshot.strip(), "description": description}
    rename = {"name": "snapshot"}
    try:
        made = snapshots.create(db, dataset, SnapshotCreate(name=form["snapshot"], description=description))
    except ValidationError as exc:
        problems = by_field(problems_of(exc), rename)
        return render_snapshots(request, db, name, problems=problems, form=form, status_code=422)
    except (ConflictError, InvalidInputError) as exc:
        problems = by_field(exc.details if isinstance(exc.details, list) else [], rename) or {"snapshot": exc.message}
        return render_snapshots(request, db, name, problems=problems, form=form, status_code=exc.status)
    url = request.url_for("console_dataset_snapshots", name=name)
    return RedirectResponse(f"{url}?{urlencode({'created': made.name})}", status_code=303)


@router.get("/console/datasets/{name}/diff", name="console_dataset_diff", dependencies=[READ])
def diff(
    request: Request,
    name: str,
    db: SessionDep,
    snapshot: Annotated[str | None, Query(max_length=200)] = None,
    against: Annotated[str | None, Query(max_length=200)] = None,
    change: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> HTMLResponse:
    """What changed from snapshot AGAINST to SNAPSHOT, as GET /v1/datasets/{name}/snapshots/{snapshot}/diff gives
    it: counts of each change, and the changed examples (of kind CHANGE, if given) a page at a time."""
    dataset = datasets.get(db, name, keep=True)
    names = [s.name for s in snapshots.all_of(db, dataset)]
    chosen = {"snapshot": snapshot or "", "against": against or ""}
    problems: dict[str, str] = {}
    status = 200
    result: SnapshotDiff | None = None
    if snapshot or against:
        if not snapshot:
            problems["snapshot"] = "choose the snapshot to look at"
        if not against:
            problems["against"] = "choose the snapshot to compare it with"
        if change and change not in CHANGES:
            problems["change"] = f"unknown change {change!r}: choose {', '.join(CHANGES)}"
        status = 422 if problems else 200
        found: dict[str, Any] = {}
        for field, value in (("snapshot", snapshot), ("against", against)):
            if value and field not in problems:
                # KEEP: a snapshot deleted meanwhile waits for this request, as the API's diff does.
                try:
                    found[field] = snapshots.get(db, dataset, value, keep=True)
                except NotFoundError as exc:
                    problems[field], status = exc.message, exc.status
        if not problems:
            try:
                result = snapshots.diff(
                    db, dataset, found["snapshot"], found["against"], change=change or None, limit=PAGE_SIZE,
                    cursor=cursor or None,
                )  # fmt: skip
            except InvalidInputError as exc:
                problems, status = by_field(exc.problems), exc.status
    else:
        chosen = _latest_two(names)
    here = {**chosen, **({"change": change} if change and change in CHANGES else {})}
    return page(
        request,
        "dataset_diff.html",
        status_code=status,
        dataset=dataset,
        names=names,
        chosen=chosen,
        changes=CHANGES,
        change=change if change in CHANGES else None,
        problems=problems,
        diff_problems=problems,
        result=result,
        labels={item.example_id: label_of(item.model_dump()) for item in result.items} if result else {},
        cursor=cursor,
        base_query=urlencode(chosen),
        next_query=urlencode({**here, "cursor": result.next_cursor}) if result and result.next_cursor else None,
        first_query=urlencode(here) if cursor else None,
    )
