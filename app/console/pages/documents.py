"""A document in the console: its status and error, and its chunks as the worker cut them (offsets, heading path,
tokens, and whether the active embedding version has each one's vector)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app import cursors
from app.api.deps import SessionDep
from app.auth.principal import Role
from app.auth.rules import needs
from app.collections import service as collections
from app.console.render import page
from app.ingest import service as documents
from app.ingest.schemas import ChunkOut
from app.limits import MAX_EXTERNAL_ID

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 100
TEXT_CHARS = 2_000  # of each chunk, on the page; the API gives the whole text


@router.get(
    "/console/collections/{name}/document", name="console_document", dependencies=[needs(Role.read, collection="name")]
)
def document(
    request: Request,
    name: str,
    db: SessionDep,
    id: Annotated[str, Query(min_length=1, max_length=MAX_EXTERNAL_ID, description="The external_id.")],
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    at: Annotated[int | None, Query(ge=0, description="Start the page at this chunk (a citation's).")] = None,
) -> HTMLResponse:
    """Document ID with a page of its chunks; AT starts the page at that chunk, so a citation's link shows it."""
    collection = collections.get(db, name)
    detail = documents.one(db, collection, id)
    if at is not None and cursor is None and at > 0:
        cursor = cursors.encode(at - 1)
    status, rows, next_cursor = documents.chunks(
        db, collection, id, limit=PAGE_SIZE, cursor=cursor, text_chars=TEXT_CHARS
    )
    return page(
        request,
        "document.html",
        collection=collection,
        document=detail,
        status=status,
        chunks=[ChunkOut.of(row) for row in rows],
        first_page=cursor is None,
        next_cursor=next_cursor,
    )
