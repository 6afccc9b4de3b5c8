"""A collection in the console: its documents by status, kept live as the worker goes (a server-sent event stream
of the counts), uploads, and failed documents with their error and a retry button. Creating a collection starts
from the home page."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.api.deps import SessionDep, SettingsDep
from app.api.uploads import from_files
from app.auth.access import check_new_collection
from app.auth.principal import Role, current
from app.auth.rules import needs
from app.collections import repository as collection_rows
from app.collections import service as collections
from app.collections.schemas import CollectionCreate
from app.console.pages.home import render_home
from app.console.render import HEADERS, fragment, page
from app.console.session import check_form
from app.db.models import DOCUMENT_STATUSES
from app.errors import InvalidInputError, PayloadTooLargeError, problems_of
from app.ingest import service as documents
from app.ingest.schemas import UploadResult

router = APIRouter(include_in_schema=False)
READ = needs(Role.read, collection="name")
WRITE = needs(Role.write, collection="name")
CSRF = Depends(check_form)
PAGE_SIZE = 50
POLL_SECONDS = 1.0


@router.post("/console/collections", dependencies=[needs(Role.admin), CSRF])
def create(
    request: Request,
    db: SessionDep,
    name: Annotated[str, Form()] = "",
    embedding_provider: Annotated[str, Form()] = "local",
    dimensions: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    """Make a collection from the home page's form; its problems, by field, come back on the form."""
    fields: dict[str, Any] = {
        "name": name.strip(),
        "embedding_provider": embedding_provider,
        "description": description,
    }
    if dimensions.strip():
        fields["dimensions"] = dimensions.strip()
    try:
        body = CollectionCreate.model_validate(fields)
        check_new_collection(current(request), body.name)
        collections.create(db, body)
    except ValidationError as exc:
        return render_home(request, db, problems=problems_of(exc, lambda loc: ".".join(map(str, loc))), form=fields)
    return RedirectResponse(request.url_for("console_collection", name=body.name), status_code=303)


@router.get("/console/collections/{name}", name="console_collection", dependencies=[READ])
def collection(
    request: Request,
    name: str,
    db: SessionDep,
    status: Annotated[str | None, Query()] = None,
    cursor: Annotated[str | None, Query()] = None,
    part: Annotated[str | None, Query(description="documents: only the table, for the live update")] = None,
) -> HTMLResponse:
    """The collection's documents, a page at a time, with their status; `part=documents` is the table alone."""
    return _page(request, db, name, status=status or None, cursor=cursor or None, part=part)


def _page(
    request: Request,
    db: Session,
    name: str,
    *,
    status: str | None = None,
    cursor: str | None = None,
    part: str | None = None,
    uploaded: list[UploadResult] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    described = collections.describe(db, [collections.get(db, name)])[0]
    if status is not None and status not in DOCUMENT_STATUSES:
        raise InvalidInputError.for_field("status", f"must be one of {', '.join(DOCUMENT_STATUSES)}")
    rows, next_cursor = documents.page(db, collections.get(db, name), limit=PAGE_SIZE, cursor=cursor, status=status)
    context = {
        "collection": described,
        "rows": rows,
        "status": status,
        "statuses": DOCUMENT_STATUSES,
        "cursor": cursor,
        "next_cursor": next_cursor,
        "uploaded": uploaded,
    }
    if part == "documents":
        return fragment(request, "_documents.html", **context)
    return page(request, "collection.html", status_code=status_code, **context)


@router.post("/console/collections/{name}/documents", dependencies=[WRITE, CSRF])
async def upload(request: Request, name: str, db: SessionDep, settings: SettingsDep) -> Response:
    """Files dropped or chosen on the collection page, stored as the API stores them: each file's outcome (queued,
    unchanged, or the reason it could not be read). A script asking for JSON gets the outcomes alone."""
    declared = int(request.headers.get("content-length") or 0)
    if declared > settings.max_upload_bytes:
        raise PayloadTooLargeError(f"request body of {declared} bytes exceeds the limit of {settings.max_upload_bytes}")
    inputs, failures = await from_files(request, settings.max_upload_bytes)
    if len(inputs) > settings.max_documents_per_request:
        raise PayloadTooLargeError(
            f"{len(inputs)} documents in one request; the limit is {settings.max_documents_per_request}"
        )
    target = await run_in_threadpool(partial(collections.get, db, name, keep=True))
    stored = await run_in_threadpool(documents.upsert, db, target, inputs) if inputs else []
    outcomes = [UploadResult(**vars(row)) for row in stored] + failures
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"documents": [o.model_dump(mode="json", exclude_none=True) for o in outcomes]})
    return await run_in_threadpool(partial(_page, request, db, name, uploaded=outcomes))


@router.post("/console/collections/{name}/retry", dependencies=[WRITE, CSRF])
def retry(request: Request, name: str, db: SessionDep, external_id: Annotated[str | None, Form()] = None) -> Response:
    """Put one failed document (or, without EXTERNAL_ID, every failed one) back in the queue; back to the page."""
    documents.retry(db, collections.get(db, name), [external_id] if external_id else None)
    return RedirectResponse(request.url_for("console_collection", name=name), status_code=303)


@router.get("/console/collections/{name}/events", dependencies=[READ])
async def events(request: Request, name: str, db: SessionDep) -> StreamingResponse:
    """Server-sent events: `counts`, the collection's documents by status, sent at once and again whenever they
    change (checked every second) for MEMORA_CONSOLE_STREAM_SECONDS; then the stream ends and the browser
    reconnects, so no stream holds up a server's shutdown for long."""
    collection_id = (await run_in_threadpool(collections.get, db, name)).id
    engine: Engine = request.app.state.engine
    return StreamingResponse(
        _counts(request, engine, collection_id),
        media_type="text/event-stream",
        headers={**HEADERS, "Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _counts(request: Request, engine: Engine, collection_id: int) -> AsyncIterator[str]:
    yield f"retry: {int(POLL_SECONDS * 1000)}\n\n"
    last = None
    deadline = time.monotonic() + request.app.state.settings.console_stream_seconds
    while time.monotonic() < deadline and not await request.is_disconnected():
        counts = await run_in_threadpool(_status_counts, engine, collection_id)
        if counts != last:
            yield f"event: counts\ndata: {json.dumps(counts, sort_keys=True)}\n\n"
            last = counts
        await asyncio.sleep(POLL_SECONDS)


def _status_counts(engine: Engine, collection_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        found = collection_rows.status_counts(conn, [collection_id])[collection_id]
    return {status: found.get(status, 0) for status in DOCUMENT_STATUSES}
