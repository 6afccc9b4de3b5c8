"""/v1/collections/{name}/chunks: a document's chunks as the worker cut them, and which have a vector."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.reads import ReadSessionDep
from app.auth.principal import Role
from app.auth.rules import needs
from app.collections import service as collections
from app.ingest import service
from app.ingest.schemas import ChunkOut, ChunkPage
from app.limits import MAX_EXTERNAL_ID

router = APIRouter(prefix="/v1/collections/{name}/chunks", tags=["documents"])


# The document is a query parameter: GET .../documents/{external_id:path} takes every path under it as an id.
@router.get("", response_model=ChunkPage, dependencies=[needs(Role.read, collection="name")])
def list_chunks(
    name: str,
    db: ReadSessionDep,
    document: Annotated[str, Query(min_length=1, max_length=MAX_EXTERNAL_ID, description="The external_id.")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=100, description="next_cursor of the previous page")] = None,
    text_chars: Annotated[
        int | None, Query(ge=0, le=1_000_000, description="Cut each text to this many characters; unset: whole.")
    ] = None,
) -> ChunkPage:
    """A document's chunks in order, a page at a time (keyset pagination by ordinal): offsets, title and heading
    path, token count, text, and whether the collection's active embedding version has each one's vector."""
    collection = collections.get(db, name)
    status, rows, next_cursor = service.chunks(
        db, collection, document, limit=limit, cursor=cursor, text_chars=text_chars
    )
    return ChunkPage(
        external_id=document,
        status=status,
        active_version=collection.active_version,
        items=[ChunkOut.of(row) for row in rows],
        next_cursor=next_cursor,
    )
