"""/v1/collections/{name}/documents: documents in (JSON or file uploads), listed, read and deleted."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter, ValidationError

from app.api.bodies import parse_json, read_body
from app.api.deps import SessionDep, SettingsDep
from app.api.reads import ReadSessionDep
from app.api.timeouts import statement_kind
from app.api.uploads import from_files
from app.auth.principal import Role
from app.auth.rules import needs
from app.collections import service as collections
from app.errors import (
    AppError,
    InvalidInputError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    location,
    problems_of,
)
from app.ingest import service
from app.ingest.schemas import (
    DocumentDetail,
    DocumentIn,
    DocumentPage,
    DocumentSummary,
    Retried,
    RetryRequest,
    UploadResponse,
    UploadResult,
)
from app.ingest.service import DocumentInput

router = APIRouter(prefix="/v1/collections/{name}/documents", tags=["documents"])
# Who may call these routes (app/auth/rules.py): the collection is the path's {name}.
READS = [needs(Role.read, collection="name")]
WRITES = [needs(Role.write, collection="name")]

_many = TypeAdapter(list[DocumentIn])
_DOCUMENT = DocumentIn.model_json_schema()
_REQUEST_BODY = {
    "application/json": {"schema": {"anyOf": [_DOCUMENT, {"type": "array", "items": _DOCUMENT}]}},
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
        }
    },
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UploadResponse,
    dependencies=[needs(Role.write, collection="name"), statement_kind("import")],
    openapi_extra={"requestBody": {"required": True, "content": _REQUEST_BODY}},
)
async def add_documents(name: str, request: Request, db: SessionDep, settings: SettingsDep) -> UploadResponse:
    """Add or update documents: one JSON document, a JSON array, or files (.txt .md .html .pdf .jsonl).

    Upserts by external_id: identical content is left alone, changed content is queued for the worker. Answers at
    once with each document's status; a file that cannot be read is reported and the others are stored.
    """
    declared = int(request.headers.get("content-length") or 0)
    if declared > settings.max_upload_bytes:
        raise PayloadTooLargeError(f"request body of {declared} bytes exceeds the limit of {settings.max_upload_bytes}")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        inputs, failures = _from_json(await read_body(request, settings.max_upload_bytes)), list[UploadResult]()
    elif kind == "multipart/form-data":
        inputs, failures = await from_files(request, settings.max_upload_bytes)
    else:
        raise UnsupportedMediaTypeError(
            f"content type {kind or '(none)'!r} is not accepted: send application/json or multipart/form-data"
        )
    if len(inputs) > settings.max_documents_per_request:
        raise PayloadTooLargeError(
            f"{len(inputs)} documents in one request; the limit is {settings.max_documents_per_request}"
        )
    if not inputs and failures:
        first = failures[0].error or {}
        raise _FailedUpload(first.get("status", 422), failures)

    collection = await run_in_threadpool(partial(collections.get, db, name, keep=True))
    stored = await run_in_threadpool(service.upsert, db, collection, inputs) if inputs else []
    return UploadResponse(documents=[UploadResult(**vars(row)) for row in stored] + failures)


@router.get("", response_model=DocumentPage, dependencies=READS)
def list_documents(
    name: str,
    db: ReadSessionDep,
    status_: Annotated[str | None, Query(alias="status", description="pending | processing | ready | failed")] = None,
    metadata: Annotated[str | None, Query(description='JSON object the metadata must contain: {"team": "hr"}')] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> DocumentPage:
    """Documents in insertion order, a page at a time (keyset pagination)."""
    collection = collections.get(db, name)
    rows, next_cursor = service.page(
        db, collection, limit=limit, cursor=cursor, status=status_, metadata=service.parse_metadata_filter(metadata)
    )
    return DocumentPage(items=[DocumentSummary.model_validate(row._mapping) for row in rows], next_cursor=next_cursor)


@router.post("/retry", response_model=Retried, dependencies=WRITES)
def retry_documents(name: str, db: SessionDep, body: RetryRequest | None = None) -> Retried:
    """Try failed documents again (those named in `external_ids`, or every failed one): they go back to the queue
    as new, their error cleared, and the worker takes them up. 404 for a document the collection lacks."""
    retried, not_failed = service.retry(db, collections.get(db, name), body.external_ids if body else None)
    return Retried(retried=retried, not_failed=not_failed)


@router.get("/{external_id:path}", response_model=DocumentDetail, dependencies=READS)
def get_document(name: str, external_id: str, db: ReadSessionDep) -> DocumentDetail:
    """One document with its status, error and chunk count."""
    row = service.one(db, collections.get(db, name), external_id)
    return DocumentDetail.model_validate(row._mapping)


@router.delete("/{external_id:path}", status_code=status.HTTP_204_NO_CONTENT, dependencies=WRITES)
def delete_document(name: str, external_id: str, db: SessionDep) -> Response:
    """Delete a document with its chunks and vectors."""
    service.remove(db, collections.get(db, name), external_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class _FailedUpload(AppError):
    """Every file of an upload failed: the status of the first failure, and all of them in details."""

    def __init__(self, status_code: int, failures: list[UploadResult]) -> None:
        first = failures[0].error or {}
        super().__init__(str(first.get("message", "no file could be read")), details=[f.model_dump() for f in failures])
        self.status = status_code
        self.code = str(first.get("code", "invalid_input"))


def _from_json(body: bytes) -> list[DocumentInput]:
    parsed = parse_json(body, parse_constant=service.reject_constant)
    many = isinstance(parsed, list)
    try:
        documents = _many.validate_python(parsed) if many else [DocumentIn.model_validate(parsed)]
    except ValidationError as exc:
        raise InvalidInputError.for_problems(problems_of(exc, lambda loc: location(loc, "body"))) from None
    return [doc.to_input() for doc in documents]
