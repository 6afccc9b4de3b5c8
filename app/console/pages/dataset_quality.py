"""A dataset's quality in the console: duplicate clusters to review and settle (keep some, drop the others), and
the train/evaluation leakage report. Looking needs read; settling a cluster needs write.

The duplicates page runs the dedup report without dropping anything: exact clusters always (one query), near ones
when asked (they embed the examples that have no embedding yet, which takes a while on a large dataset). The
leakage report embeds too, so it runs when its form is sent, not on every visit.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session

from app.api.deps import SessionDep, SettingsDep
from app.auth.principal import Role
from app.auth.rules import needs
from app.collections.schemas import Provider
from app.config import Settings
from app.console.examples import by_field, shown
from app.console.render import page
from app.console.session import check_form
from app.db.models import PROVIDERS
from app.errors import InvalidInputError, Problem, problems_of
from app.training.datasets import service as datasets
from app.training.quality import dedup
from app.training.quality import leakage as leakages
from app.training.quality.schemas import DedupRequest, EmbeddingChoice, ResolveRequest

router = APIRouter(include_in_schema=False)
READ = needs(Role.read, dataset="name")
WRITE = needs(Role.write, dataset="name")
CSRF = Depends(check_form)
CLUSTERS_SHOWN = 50  # the report's counts cover them all
MEMBERS_SHOWN = 100  # of one cluster; the others are left as they are when it is settled here
PAIRS_SHOWN = 200
DEFAULTS = {"provider": "local", "threshold": "0.95", "k": "10"}


@router.get("/console/datasets/{name}/duplicates", name="console_dataset_duplicates", dependencies=[READ])
def duplicates(
    request: Request,
    name: str,
    db: SessionDep,
    settings: SettingsDep,
    near: Annotated[str | None, Query()] = None,
    provider: Annotated[str, Query(max_length=20)] = DEFAULTS["provider"],
    threshold: Annotated[str, Query(max_length=20)] = DEFAULTS["threshold"],
    dropped: Annotated[int | None, Query(ge=0)] = None,
) -> HTMLResponse:
    """The dataset's exact duplicate clusters (and near ones, with `near`), each with its examples."""
    view = {"near": near or "", "provider": provider, "threshold": threshold}
    return render_duplicates(request, db, settings, name, view, dropped=dropped)


def render_duplicates(
    request: Request,
    db: Session,
    settings: Settings,
    name: str,
    view: dict[str, str],
    *,
    dropped: int | None = None,
    failed: tuple[str, dict[str, str]] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The duplicates page for VIEW (near, provider, threshold); FAILED: the cluster a settling was refused for,
    and its problems by field."""
    dataset = datasets.get(db, name)
    fields: dict[str, Any] = {"provider": view["provider"], "limit": CLUSTERS_SHOWN}
    if view["near"]:
        fields["near"] = {"threshold": view["threshold"]}
    problems: dict[str, str] = {}
    try:
        body = DedupRequest.model_validate(fields)
    except ValidationError as exc:
        problems = by_field(problems_of(exc), {"near.threshold": "threshold"})
        body = DedupRequest(limit=CLUSTERS_SHOWN)  # exact clusters still show
    report = dedup.dedup(db, name, body, settings)
    examples = datasets.some(db, dataset, [m for c in report.clusters for m in c.members[:MEMBERS_SHOWN]])
    clusters = [(c, [shown(examples[m]) for m in c.members[:MEMBERS_SHOWN] if m in examples]) for c in report.clusters]
    return page(
        request,
        "dataset_duplicates.html",
        status_code=422 if problems and status_code == 200 else status_code,
        dataset=dataset,
        report=report,
        clusters=clusters,
        view=view,
        providers=PROVIDERS,
        problems=problems,
        dropped=dropped,
        failed=failed,
        shown_members=MEMBERS_SHOWN,
    )


@router.post("/console/datasets/{name}/duplicates/resolve", name="console_dataset_resolve", dependencies=[WRITE, CSRF])
def resolve(
    request: Request,
    name: str,
    db: SessionDep,
    settings: SettingsDep,
    members: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies form defaults
    drop: Annotated[list[str], Form()] = [],  # noqa: B006
    cluster: Annotated[str, Form(max_length=30)] = "",
    near: Annotated[str, Form(max_length=20)] = "",
    provider: Annotated[str, Form(max_length=20)] = DEFAULTS["provider"],
    threshold: Annotated[str, Form(max_length=20)] = DEFAULTS["threshold"],
) -> Response:
    """Settle one cluster as POST /v1/datasets/{name}/duplicates/resolve does: the checked examples leave the live
    dataset, the cluster's others stay; back to the duplicates page, or that page with the problems."""
    datasets.get(db, name)
    view = {"near": near, "provider": provider, "threshold": threshold}
    problems: list[Problem] = []
    try:
        ids, gone = [int(m) for m in members], [int(d) for d in drop]
    except ValueError:
        ids, gone = [], []
        problems.append({"field": "drop", "reason": "not example ids: reload the page and try again"})
    if not problems and not gone:
        problems.append({"field": "drop", "reason": "check at least one example to drop"})
    if not problems:
        try:
            body = ResolveRequest.model_validate({"keep": [i for i in ids if i not in gone], "drop": gone})
            resolved = dedup.resolve(db, name, body)
        except ValidationError as exc:
            problems = problems_of(exc)
        except InvalidInputError as exc:
            problems = exc.problems
    if problems:
        return render_duplicates(
            request, db, settings, name, view, failed=(cluster, by_field(problems)), status_code=422
        )
    query = urlencode({**{k: v for k, v in view.items() if v}, "dropped": len(resolved.dropped)})
    return RedirectResponse(f"{request.url_for('console_dataset_duplicates', name=name)}?{query}", status_code=303)


class LeakageForm(BaseModel):
    """The leakage form's fields, checked as GET /v1/datasets/{name}/leakage checks its query."""

    provider: Provider
    threshold: float = Field(gt=0, le=1, allow_inf_nan=False)
    k: int = Field(ge=1, le=100)


@router.get("/console/datasets/{name}/leakage", name="console_dataset_leakage", dependencies=[READ])
def leakage(
    request: Request,
    name: str,
    db: SessionDep,
    settings: SettingsDep,
    provider: Annotated[str | None, Query(max_length=20)] = None,
    threshold: Annotated[str, Query(max_length=20)] = DEFAULTS["threshold"],
    k: Annotated[str, Query(max_length=20)] = DEFAULTS["k"],
) -> HTMLResponse:
    """Pairs of a train example and a validation or test example that are exact or near duplicates; the report runs
    when the form is sent (with `provider`)."""
    dataset = datasets.get(db, name)
    form = {"provider": provider or DEFAULTS["provider"], "threshold": threshold, "k": k}
    problems: dict[str, str] = {}
    report, pairs = None, []
    if provider is not None:
        try:
            checked = LeakageForm.model_validate(form)
        except ValidationError as exc:
            problems = by_field(problems_of(exc))
        else:
            choice = EmbeddingChoice(provider=checked.provider)
            report = leakages.leakage(
                db, name, settings, threshold=checked.threshold, k=checked.k, choice=choice, limit=PAIRS_SHOWN
            )
            examples = datasets.some(db, dataset, [i for p in report.pairs for i in (p.train_id, p.other_id)])
            pairs = [
                (p, shown(examples[p.train_id]), shown(examples[p.other_id]))
                for p in report.pairs
                if p.train_id in examples and p.other_id in examples
            ]
    return page(
        request,
        "dataset_leakage.html",
        status_code=422 if problems else 200,
        dataset=dataset,
        form=form,
        providers=PROVIDERS,
        problems=problems,
        report=report,
        pairs=pairs,
    )
