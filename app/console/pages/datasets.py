"""A dataset in the console: its split sizes and labels (charts, each with its table), its examples a page at a time
by split and label, importing a file (with every rejected line and why), splitting, and downloads of its exports.
Duplicates and leakage are in dataset_quality.py, snapshots in dataset_snapshots.py."""

from __future__ import annotations

from functools import partial
from typing import IO, Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from app.api.deps import SessionDep, SettingsDep, get_session
from app.api.timeouts import statement_kind
from app.auth.principal import Role, current
from app.auth.rules import needs
from app.console import charts
from app.console.examples import by_field, shown
from app.console.render import page
from app.console.session import check_form
from app.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError, problems_of
from app.training.datasets import repository
from app.training.datasets import service as datasets
from app.training.datasets.schemas import SPLITS, ExampleOut, SplitRule
from app.training.exports import EXPORT_FORMATS
from app.training.exports import service as export
from app.training.exports.schemas import Options
from app.training.imports import readers
from app.training.imports.importer import Importer
from app.training.imports.schemas import ImportMode, ImportReport
from app.training.quality import splits
from app.training.quality.schemas import SplitReport
from app.training.snapshots import service as snapshots

router = APIRouter(include_in_schema=False)
READ = needs(Role.read, dataset="name")
WRITE = needs(Role.write, dataset="name")
CSRF = Depends(check_form)
PAGE_SIZE = 50
LABELS_CHARTED = 12  # the rest of the labels are one bar, "N others"
IMPORT_MODES: tuple[ImportMode, ...] = ("skip", "strict")
# The session lives until the response is sent, so the export's stream reads through it (as /v1/.../export).
StreamSessionDep = Annotated[Session, Depends(get_session)]


@router.get("/console/datasets/{name}", name="console_dataset", dependencies=[READ])
def dataset(
    request: Request,
    name: str,
    db: SessionDep,
    split: Annotated[str | None, Query()] = None,
    label: Annotated[str | None, Query(max_length=1000)] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> HTMLResponse:
    """The dataset's summary and its examples, a page at a time, filtered by split and label."""
    return render_dataset(request, db, name, split=split or None, label=label or None, cursor=cursor or None)


def render_dataset(
    request: Request,
    db: Session,
    name: str,
    *,
    split: str | None = None,
    label: str | None = None,
    cursor: str | None = None,
    imported: ImportReport | None = None,
    split_done: SplitReport | None = None,
    problems: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The dataset page; after an import or a split, with its outcome; after a form with problems, with them by field
    (and what was typed, in FORM)."""
    row = datasets.get(db, name)
    described = datasets.describe(db, [row])[0]
    filters: dict[str, str] = {}
    if split is not None and split not in SPLITS:
        filters["split"] = f"unknown split {split!r}: choose {', '.join(SPLITS)}"
    try:
        datasets.parse_cursor(cursor)
    except InvalidInputError as exc:
        filters |= by_field(exc.problems)
    examples: list[ExampleOut] = []
    next_cursor = None
    if not filters:
        examples, next_cursor = datasets.page(db, row, limit=PAGE_SIZE, cursor=cursor, split=split, label=label)
    labels = repository.label_counts(db, row, None)
    shown_filters = {k: v for k, v in (("split", split), ("label", label)) if v}
    sizes: list[tuple[str, int]] = [(s, described.split_counts.get(s, 0)) for s in SPLITS]
    if unsplit := described.split_counts.get("none"):
        sizes.append(("none", unsplit))
    rule = described.split
    typed: dict[str, Any] = {"mode": "skip", **{s: f"{rule.ratios.get(s, 0):g}" for s in SPLITS}}
    typed |= {"seed": rule.seed, "stratified": rule.stratified}
    return page(
        request,
        "dataset.html",
        status_code=422 if filters and status_code == 200 else status_code,
        dataset=described,
        split_chart=charts.bar_chart(sizes),
        label_chart=charts.bar_chart(charts.folded(labels, LABELS_CHARTED)),
        labels=[label_name for label_name, _ in labels],
        splits=SPLITS,
        rows=[shown(e) for e in examples],
        split=split,
        label=label,
        next_query=urlencode({**shown_filters, "cursor": next_cursor}) if next_cursor else None,
        first_query=urlencode(shown_filters) if cursor else None,
        filters=filters,
        imported=imported,
        split_done=split_done,
        problems=problems or {},
        form=typed | (form or {}),
        modes=IMPORT_MODES,
        formats=formats_for(described.task),
        snapshots=[s.name for s in snapshots.all_of(db, row)],
    )


def formats_for(task: str) -> list[str]:
    """The export formats a dataset of TASK can be downloaded in from the console (openai-batch, which needs a model
    for its requests, is the API's and the CLI's)."""
    return [
        f for f in EXPORT_FORMATS if f != "openai-batch" and ((accepts := export.ACCEPTS[f]) is None or task in accepts)
    ]


@router.post(
    "/console/datasets/{name}/import",
    name="console_dataset_import",
    dependencies=[WRITE, CSRF, statement_kind("import")],
)
async def import_file(request: Request, name: str, db: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """A JSONL, CSV or SQuAD JSON file from the import form, imported as POST /v1/datasets/{name}/import imports it;
    the page comes back with the report: what was stored, and every rejected line with its field and reason."""
    declared = int(request.headers.get("content-length") or 0)
    if declared > settings.max_import_bytes:
        raise PayloadTooLargeError(f"request body of {declared} bytes exceeds the limit of {settings.max_import_bytes}")
    await run_in_threadpool(datasets.get, db, name)  # an unknown dataset is a 404, whatever the form holds
    async with request.form(max_files=1, max_part_size=settings.max_upload_bytes) as form:
        upload, mode = form.get("file"), str(form.get("mode") or "skip")
        problems: dict[str, str] = {}
        if mode not in IMPORT_MODES:
            problems["mode"] = f"choose {' or '.join(IMPORT_MODES)}"
        if not isinstance(upload, UploadFile) or not upload.filename:
            problems["file"] = "choose a file to import"
        elif (upload.size or 0) > settings.max_import_bytes:
            raise PayloadTooLargeError(f"file exceeds the limit of {settings.max_import_bytes} bytes")
        outcome: dict[str, Any] = {"problems": problems, "status_code": 422}
        if not problems and isinstance(upload, UploadFile):
            outcome = await _imported(db, name, upload, mode)
    render = partial(render_dataset, request, db, name, form={"mode": mode}, **outcome)
    return await run_in_threadpool(render)


async def _imported(db: Session, name: str, upload: UploadFile, mode: str) -> dict[str, Any]:
    """What the dataset page shows after importing UPLOAD: the report, or the file's problem; and its status."""
    try:
        kind = readers.file_kind(upload.filename, upload.content_type)
    except UnsupportedMediaTypeError as exc:
        return {"problems": {"file": exc.message}, "status_code": exc.status}
    await upload.seek(0)
    try:
        report = await run_in_threadpool(_import, db, name, upload.file, kind, mode)
    except InvalidInputError as exc:
        if not (isinstance(exc.details, dict) and "received" in exc.details):
            return {"problems": {"file": exc.message}, "status_code": exc.status}
        # Strict mode with a bad line, or no good line at all: nothing was stored, and the report says why.
        return {"imported": ImportReport.model_validate(exc.details), "status_code": exc.status}
    return {"imported": report}


def _import(db: Session, name: str, file: IO[bytes], kind: readers.FileKind, mode: Any) -> ImportReport:
    job = Importer(db, datasets.get(db, name, keep=True), mode=mode)
    job.add(readers.read(file, kind))
    return job.finish()


@router.post("/console/datasets/{name}/split", name="console_dataset_split", dependencies=[WRITE, CSRF])
def split_dataset(
    request: Request,
    name: str,
    db: SessionDep,
    train: Annotated[str, Form()] = "",
    validation: Annotated[str, Form()] = "",
    test: Annotated[str, Form()] = "",
    seed: Annotated[str, Form()] = "",
    stratified: Annotated[str | None, Form()] = None,
) -> HTMLResponse:
    """Split by the form's ratios and seed, as POST /v1/datasets/{name}/split does; the page shows the new sizes."""
    datasets.get(db, name)
    typed = {"train": train.strip(), "validation": validation.strip(), "test": test.strip()}
    form = {**typed, "seed": seed.strip(), "stratified": stratified is not None}
    fields = {
        "ratios": {s: value or "0" for s, value in typed.items()},
        "seed": seed.strip() or "0",
        "stratified": stratified is not None,
    }
    try:
        rule = SplitRule.model_validate(fields)
    except ValidationError as exc:
        problems = by_field(problems_of(exc), {f"ratios.{s}": s for s in SPLITS})
        return render_dataset(request, db, name, problems=problems, form=form, status_code=422)
    return render_dataset(request, db, name, split_done=splits.split(db, name, rule), form=form)


@router.get(
    "/console/datasets/{name}/export", name="console_dataset_export", dependencies=[READ, statement_kind("export")]
)
def export_file(
    request: Request,
    name: str,
    db: StreamSessionDep,
    settings: SettingsDep,
    format: Annotated[str | None, Query()] = None,
    split: Annotated[str | None, Query()] = None,
    snapshot: Annotated[str | None, Query(max_length=200)] = None,
) -> StreamingResponse:
    """The file GET /v1/datasets/{name}/export streams, as a download (the console's links carry the sign-in
    cookie, which /v1 does not read)."""
    job = export.prepare(db, name, Options(format or None, split or None, snapshot or None), current(request))
    headers = {"Content-Disposition": f'attachment; filename="{job.filename}"', "X-Memora-Examples": str(job.total)}
    return StreamingResponse(job.chunks(db, settings), media_type=job.media_type, headers=headers)
