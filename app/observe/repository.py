"""The queries behind the status summary and the metrics read at scrape time: one grouped scan of the documents
for the queue and the leases, and the small lookups beside it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, func, select

from app.db.models import Collection, Document
from app.ingest.repository import workers_connected

__all__ = ["QueueRow", "last_errors", "leases_by_worker", "queue", "workers_connected"]


@dataclass(frozen=True)
class QueueRow:
    """The documents of one collection in one status; held/expired leases and the oldest wait among them."""

    collection_id: int
    collection: str
    status: str
    documents: int
    leases_held: int
    leases_expired: int
    oldest_pending_seconds: float | None
    with_error: int  # documents whose last attempt failed (pending ones will be retried)


def queue(conn: Connection) -> list[QueueRow]:
    """Documents by collection and status in one grouped scan.

    A lease is a 'processing' document's available_at: in the future, a worker holds it; past, its worker died or
    is late, and the next claim takes it over. The oldest pending wait is measured from updated_at, which the
    document's trigger sets on every change: the time since it was queued, edited or given back for a retry.
    """
    processing = Document.status == "processing"
    rows = conn.execute(
        select(
            Document.collection_id,
            Collection.name,
            Document.status,
            func.count(),
            func.count().filter(and_(processing, Document.available_at > func.now())),
            func.count().filter(and_(processing, Document.available_at <= func.now())),
            func.extract("epoch", func.now() - func.min(Document.updated_at).filter(Document.status == "pending")),
            func.count().filter(Document.error.is_not(None)),
        )
        .join(Collection, Collection.id == Document.collection_id)
        .group_by(Document.collection_id, Collection.name, Document.status)
        .order_by(Collection.name, Document.status)
    )
    return [QueueRow(*row[:6], None if row[6] is None else max(0.0, float(row[6])), row[7]) for row in rows]


def leases_by_worker(conn: Connection) -> list[Row[Any]]:
    """(name, documents, expired, lease_until) of every worker that holds a document now (name: its leased_by)."""
    return list(
        conn.execute(
            select(
                Document.leased_by.label("name"),
                func.count().label("documents"),
                func.count().filter(Document.available_at <= func.now()).label("expired"),
                func.max(Document.available_at).label("lease_until"),
            )
            .where(Document.status == "processing", Document.leased_by.is_not(None))
            .group_by(Document.leased_by)
            .order_by(Document.leased_by)
        )
    )


def last_errors(conn: Connection, limit: int, collection_ids: Sequence[int] | None = None) -> list[Row[Any]]:
    """The LIMIT documents that failed most recently, for good or awaiting a retry: (document_id, external_id,
    collection, status, attempts, at, error, request_id), newest first; of COLLECTION_IDS alone when given."""
    within = [] if collection_ids is None else [Document.collection_id.in_(collection_ids)]
    return list(
        conn.execute(
            select(
                Document.id.label("document_id"),
                Document.external_id,
                Collection.name.label("collection"),
                Document.status,
                Document.attempts,
                Document.updated_at.label("at"),
                Document.error,
                Document.request_id,
            )
            .join(Collection, Collection.id == Document.collection_id)
            .where(Document.error.is_not(None), Document.status.in_(("failed", "pending")), *within)
            .order_by(Document.updated_at.desc(), Document.id.desc())
            .limit(limit)
        )
    )


def now(conn: Connection) -> datetime:
    value: datetime = conn.execute(select(func.now())).scalar_one()
    return value
