"""/v1/datasets: datasets of labeled examples; examples in (JSON or streamed file imports), listed, read, deleted."""

from __future__ import annotations

import tempfile
from typing import IO, Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from app.api.bodies import parse_json, read_body, spool_body
from app.api.deps import ExampleId, SessionDep, SettingsDep
from app.api.reads import ReadSessionDep
from app.api.timeouts import statement_kind
from app.audit import recorder as audit
from app.auth.access import check_new_dataset
from app.auth.principal import Role, current
from app.auth.rules import needs
from app.db.models import Dataset
from app.db.repository import all_named
from app.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError
from app.training.datasets import repository, service
from app.training.datasets.schemas import (
    DatasetCreate,
    DatasetOut,
    ExampleOut,
    ExamplePage,
    Format,
    LabelCount,
    SplitName,
)
from app.training.imports import readers
from app.training.imports.importer import Importer
from app.training.imports.schemas import ImportMode, ImportReport

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
# Who may call these routes (app/auth/rules.py): the dataset is the path's {name}.
READS = [needs(Role.read, dataset="name")]
WRITES = [needs(Role.write, dataset="name")]

# The bodies these routes read themselves (streamed, or parsed as any example format), documented so that clients
# and the OpenAPI fuzzer (tests/fuzz/) know what to send.
_RECORDS = {"anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}
_EXAMPLES_BODY = {"required": True, "content": {"application/json": {"schema": _RECORDS}}}
_IMPORT_BODY = {
    "required": True,
    "content": {
        "application/x-ndjson": {"schema": {"type": "string", "description": "JSONL: one record per line"}},
        "text/csv": {"schema": {"type": "string", "description": "A header row naming the fields"}},
        "application/json": {"schema": {**_RECORDS, "description": "A SQuAD file, or an array of records"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    },
}

ModeQuery = Annotated[
    ImportMode, Query(description="strict: any bad record and nothing is stored; skip: store the good ones")
]
FormatQuery = Annotated[Format | None, Query(description="The records' format; unset: recognised per record")]
ModelQuery = Annotated[
    str | None, Query(max_length=200, description="Target model: its tokenizer and context limit (gpt-4o-mini)")
]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut, dependencies=[needs(Role.admin)])
def create_dataset(body: DatasetCreate, db: SessionDep, request: Request) -> DatasetOut:
    audit.names(request, dataset=body.name)  # first, so a refused create is recorded with the name it asked for
    check_new_dataset(current(request), body.name)
    return service.describe(db, [service.create(db, body)])[0]


@router.get("", response_model=list[DatasetOut], dependencies=[needs(Role.read)])
def list_datasets(db: ReadSessionDep, request: Request) -> list[DatasetOut]:
    """The datasets the key is granted."""
    principal = current(request)
    return service.describe(db, [row for row in all_named(db, Dataset) if principal.sees_dataset(row.name)])


@router.get("/{name}", response_model=DatasetOut, dependencies=READS)
def get_dataset(name: str, db: ReadSessionDep) -> DatasetOut:
    return service.describe(db, [service.get(db, name)])[0]


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[needs(Role.admin, dataset="name")])
def delete_dataset(name: str, db: SessionDep) -> Response:
    """Delete a dataset with its examples and snapshots."""
    service.delete_dataset(db, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{name}/examples",
    status_code=status.HTTP_201_CREATED,
    response_model=ImportReport,
    openapi_extra={"requestBody": _EXAMPLES_BODY},
    dependencies=[needs(Role.write, dataset="name"), statement_kind("import")],
)
async def add_examples(
    name: str,
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    mode: ModeQuery = "strict",
    format: FormatQuery = None,
    model: ModelQuery = None,
) -> ImportReport:
    """Add one example (a JSON object) or many (an array) in any format; the report says what was stored."""
    body = await _read_json(request, settings.max_upload_bytes)
    if isinstance(body, list) and len(body) > settings.max_examples_per_request:
        raise PayloadTooLargeError(
            f"{len(body)} examples in one request; the limit is {settings.max_examples_per_request} "
            "(import a file for more)"
        )
    return await run_in_threadpool(_import, db, name, readers.records_of(body), mode, format, model)


@router.post(
    "/{name}/import",
    response_model=ImportReport,
    openapi_extra={"requestBody": _IMPORT_BODY},
    dependencies=[needs(Role.write, dataset="name"), statement_kind("import")],
)
async def import_file(
    name: str,
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    mode: ModeQuery = "skip",
    format: FormatQuery = None,
    model: ModelQuery = None,
    rename: Annotated[
        list[str], Query(description="FIELD=COLUMN: fill FIELD from a CSV column or JSON key, e.g. label=spam")
    ] = [],  # noqa: B006 - FastAPI copies query defaults
) -> ImportReport:
    """Import a JSONL, CSV or SQuAD JSON file, sent as the body or as the multipart field `file`.

    The file is streamed to disk (never held in memory) and read a record at a time. Records already in the
    dataset are counted as duplicates and not stored again.
    """
    renames = readers.parse_renames(rename)
    media_type: str | None = request.headers.get("content-type", "").split(";")[0].strip().lower()
    with tempfile.TemporaryFile() as spool:
        if media_type == "multipart/form-data":
            filename, media_type = await _spool_form(request, spool, settings.max_import_bytes)
        else:
            filename = None
            await spool_body(request, spool, settings.max_import_bytes, "MEMORA_MAX_IMPORT_BYTES")
        kind = readers.file_kind(filename, media_type)
        spool.seek(0)
        records = readers.read(spool, kind, format, renames)
        return await run_in_threadpool(_import, db, name, records, mode, format, model)


@router.get("/{name}/examples", response_model=ExamplePage, dependencies=READS)
def list_examples(
    name: str,
    db: ReadSessionDep,
    split: SplitName | None = None,
    label: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> ExamplePage:
    """Live examples in seq order, a page at a time (keyset pagination)."""
    items, next_cursor = service.page(db, service.get(db, name), limit=limit, cursor=cursor, split=split, label=label)
    return ExamplePage(items=items, next_cursor=next_cursor)


@router.get("/{name}/examples/{example_id}", response_model=ExampleOut, dependencies=READS)
def get_example(name: str, example_id: ExampleId, db: ReadSessionDep) -> ExampleOut:
    return service.one(db, service.get(db, name), example_id)


@router.delete(
    "/{name}/examples/{example_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=WRITES,
)
def delete_example(name: str, example_id: ExampleId, db: SessionDep) -> Response:
    """Remove an example from the live dataset; snapshots that hold it still read it."""
    service.remove_example(db, service.get(db, name, keep=True), example_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/labels", response_model=list[LabelCount], dependencies=READS)
def label_counts(name: str, db: ReadSessionDep, split: SplitName | None = None) -> list[LabelCount]:
    """Live examples per label, most frequent first."""
    rows = repository.label_counts(db, service.get(db, name), split)
    return [LabelCount(label=label, count=count) for label, count in rows]


def _import(db: Session, name: str, records: Any, mode: Any, format: str | None, model: str | None) -> ImportReport:
    job = Importer(db, service.get(db, name, keep=True), mode=mode, format=format, model=model)
    job.add(records)
    return job.finish()


async def _read_json(request: Request, limit: int) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise UnsupportedMediaTypeError(
            f"content type {kind or '(none)'!r} is not accepted: send application/json (files go to .../import)"
        )
    return parse_json(await read_body(request, limit))


async def _spool_form(request: Request, spool: IO[bytes], limit: int) -> tuple[str | None, str | None]:
    async with request.form(max_files=1, max_part_size=limit) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInputError.for_field("file", "a multipart import needs its file in the field 'file'")
        size = 0
        while part := await upload.read(1 << 20):
            size += len(part)
            if size > limit:
                raise PayloadTooLargeError(f"file exceeds the limit of {limit} bytes (MEMORA_MAX_IMPORT_BYTES)")
            spool.write(part)
        return upload.filename, upload.content_type
