"""Queries for collections."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from app.db.models import Chunk, Document, DocumentCount
from app.db.query import Query
from app.observe.context import current_request_id

_TEXT_SEARCH_CONFIG_EXISTS = Query("SELECT count(*) = 1 FROM pg_ts_config WHERE cfgname = %(name)s")


def text_search_config_exists(db: Session, name: str) -> bool:
    return bool(_TEXT_SEARCH_CONFIG_EXISTS.run(db, {"name": name}).scalar_one())


def requeue_documents(db: Session, collection_id: int) -> int:
    """Queue every document of the collection again (after a change of chunking or model)."""
    result = db.execute(
        update(Document)
        .where(Document.collection_id == collection_id)
        .values(
            status="pending",
            attempts=0,
            error=None,
            available_at=func.now(),
            leased_by=None,
            request_id=current_request_id(),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def set_chunk_language(db: Session, collection_id: int, language: str) -> None:
    db.execute(
        update(Chunk)
        .where(Chunk.collection_id == collection_id)
        .values(language=language)
        .execution_options(synchronize_session=False)
    )


def status_counts(db: Session | Connection, collection_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """How many documents of each collection are in each status: {collection_id: {status: count}} (a collection
    without documents maps to {}). Summed from the counts the triggers append (015-document-counts.sql): no
    document is read, however many there are."""
    counts: dict[int, dict[str, int]] = {cid: {} for cid in collection_ids}
    rows = db.execute(
        select(DocumentCount.collection_id, DocumentCount.status, func.sum(DocumentCount.n))
        .where(DocumentCount.collection_id.in_(collection_ids))
        .group_by(DocumentCount.collection_id, DocumentCount.status)
        .having(func.sum(DocumentCount.n) != 0)
    )
    for collection_id, status, count in rows:
        counts[collection_id][status] = int(count)
    return counts
