"""The queries of ingestion's documents: stored, listed, read and deleted (the REST API, the CLI), and queued (the
worker); a document's chunks and vectors have theirs in app/ingest/chunk_repository.py."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import psycopg
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    and_,
    case,
    delete,
    func,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.db.engine import sibling
from app.db.models import Chunk, Collection, Document
from app.db.query import Query

Db = Connection | Session

_LISTEN = Query("LISTEN {channel}")
_NOTIFY = Query("SELECT pg_notify(%(channel)s, %(payload)s)")
_WORKERS_CONNECTED = Query(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE application_name LIKE 'memora-worker%%' AND datname = current_database()"
)


@dataclass(frozen=True)
class ClaimedDocument:
    """A document a worker holds the lease of, with what it needs of its collection."""

    collection_id: int
    id: int
    version: int
    attempts: int
    title: str
    content: str
    content_type: str
    provider: str
    model: str
    dimensions: int
    chunking: dict[str, Any]
    language: str
    embedding_version: int = 1  # the collection's active version, which its vectors go into
    request_id: str | None = None  # of the request that created or last changed it, for the worker's log lines
    # Set when the document was claimed from a worker whose lease ran out (it died, or lost the database): who,
    # and how many seconds ago its lease ended, so a takeover shows in the log with the time it took.
    taken_over_from: str | None = None
    lease_expired_for: float | None = None


# Documents.


def upsert_documents(db: Session, rows: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """Insert ROWS (document columns) or update the documents of the same external_id whose content, title, type,
    metadata or source differ; the rows written as (external_id, status, version, created, id) by external_id."""
    # Rows in key order: two requests upserting the same documents lock them in the same order, never deadlock.
    statement = insert(Document.__table__).values(sorted(rows, key=lambda row: str(row["external_id"])))  # type: ignore[arg-type]
    excluded = statement.excluded
    changed = func.row(
        Document.content_hash, Document.title, Document.content_type, Document.metadata_, Document.source
    ).op("IS DISTINCT FROM")(
        func.row(excluded.content_hash, excluded.title, excluded.content_type, excluded.metadata, excluded.source)
    )
    upsert: Any = statement.on_conflict_do_update(
        index_elements=[Document.collection_id, Document.external_id],
        set_={
            name: excluded[name] for name in ("title", "content", "content_type", "metadata", "source", "request_id")
        },
        where=changed,
    ).returning(Document.external_id, Document.status, Document.version, literal_column("xmax = 0"), Document.id)
    return {row[0]: tuple(row) for row in db.execute(upsert)}


def document_states(db: Session, collection_id: int, external_ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """(external_id, status, version) of the collection's documents EXTERNAL_IDS, by external_id."""
    if not external_ids:
        return {}
    rows = db.execute(
        select(Document.external_id, Document.status, Document.version).where(
            Document.collection_id == collection_id, Document.external_id.in_(external_ids)
        )
    )
    return {row[0]: tuple(row) for row in rows}


def mark_ready(db: Session, collection_id: int, document_ids: Sequence[int]) -> None:
    """Mark documents whose chunks and vectors were written here (not by a worker) ready."""
    db.execute(
        update(Document)
        .where(Document.collection_id == collection_id, Document.id.in_(document_ids))
        .values(status="ready", attempts=0, error=None, leased_by=None)
    )


def document_page(
    db: Session,
    collection_id: int,
    limit: int,
    *,
    after: int | None = None,
    status: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> list[Row[Any]]:
    """Up to LIMIT document summaries in id order, after document id AFTER, of STATUS, whose metadata holds METADATA."""
    query = _summary().where(Document.collection_id == collection_id)
    if after is not None:
        query = query.where(Document.id > after)
    if status is not None:
        query = query.where(Document.status == status)
    if metadata is not None:
        query = query.where(Document.metadata_.contains(metadata))
    return list(db.execute(query.order_by(Document.id).limit(limit)))


# Failed documents back to the queue, as new: the trigger on document wakes the workers (002-row-maintenance.sql).
_RETRY = Query("""
UPDATE memora.document
SET status = 'pending', attempts = 0, error = NULL, available_at = now(), leased_by = NULL, updated_at = now()
WHERE collection_id = %(c)s AND status = 'failed'
  AND (%(ids)s::text[] IS NULL OR external_id = ANY(%(ids)s::text[]))
RETURNING external_id
""")


def retry_failed(db: Session, collection_id: int, external_ids: Sequence[str] | None) -> list[str]:
    """Queue the collection's failed documents again (those of EXTERNAL_IDS, or all): their external ids."""
    ids = None if external_ids is None else list(external_ids)
    return sorted(_RETRY.run(db, {"c": collection_id, "ids": ids}).scalars())


def find_document(db: Session, collection_id: int, external_id: str) -> Row[Any] | None:
    """The summary of document EXTERNAL_ID with its content, or None."""
    return db.execute(
        _summary(with_content=True).where(Document.collection_id == collection_id, Document.external_id == external_id)
    ).first()


def document_key(db: Session, collection_id: int, external_id: str) -> tuple[int, str] | None:
    """The id and status of document EXTERNAL_ID, or None."""
    row = db.execute(
        select(Document.id, Document.status).where(
            Document.collection_id == collection_id, Document.external_id == external_id
        )
    ).first()
    return None if row is None else (row[0], row[1])


def delete_document(db: Session, collection_id: int, external_id: str) -> bool:
    """Delete document EXTERNAL_ID with its chunks and vectors; False when there was none."""
    result = db.execute(
        delete(Document).where(Document.collection_id == collection_id, Document.external_id == external_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _summary(with_content: bool = False) -> Any:
    chunk_count = (
        select(func.count())
        .where(and_(Chunk.collection_id == Document.collection_id, Chunk.document_id == Document.id))
        .scalar_subquery()
    )
    columns = [
        Document.id, Document.external_id, Document.title, Document.source, Document.content_type,
        Document.metadata_.label("metadata"), Document.status, Document.error, Document.attempts, Document.version,
        func.encode(Document.content_hash, "hex").label("content_hash"), chunk_count.label("chunk_count"),
        Document.created_at, Document.updated_at,
    ]  # fmt: skip
    return select(*columns, *([Document.content] if with_content else []))


# The queue.


def claim(conn: Connection, worker: str, limit: int, lease: timedelta) -> list[ClaimedDocument]:
    """Take up to LIMIT available documents: pending ones, and ones whose worker's lease ran out.

    FOR UPDATE SKIP LOCKED lets workers claim side by side without waiting on or taking each other's rows; the
    lease (available_at in the future) keeps a claimed document from others until the worker is done or gone.
    """
    claimable = (
        select(Document.collection_id, Document.id)
        .where(Document.status.in_(("pending", "processing")), Document.available_at <= func.now())
        .order_by(Document.available_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("claimable")
    )
    claimed = (
        update(Document)
        .where(Document.collection_id == claimable.c.collection_id, Document.id == claimable.c.id)
        .values(
            status="processing",
            attempts=Document.attempts + 1,
            available_at=func.now() + lease,
            leased_by=worker,
        )
        .returning(Document.collection_id, Document.id)
        .cte("claimed")
    )
    rows = conn.execute(
        select(
            Document.collection_id,
            Document.id,
            Document.version,
            Document.attempts,
            Document.title,
            Document.content,
            Document.content_type,
            Collection.embedding_provider,
            Collection.embedding_model,
            Collection.dimensions,
            Collection.chunking,
            Collection.language,
            Collection.active_version,
            Document.request_id,
            # Before the UPDATE: whose lease ran out (of a document still processing), and how long ago.
            case((Document.status == "processing", Document.leased_by)),
            func.extract("epoch", func.now() - Document.available_at),
        )
        .join(claimed, and_(Document.collection_id == claimed.c.collection_id, Document.id == claimed.c.id))
        .join(Collection, Collection.id == Document.collection_id)
    ).all()
    # The outer SELECT sees the rows as they were before the UPDATE: take version from there, attempts + 1.
    claimed_rows: list[Any] = [tuple(row) for row in rows]
    return [
        ClaimedDocument(
            *row[:3],
            row[3] + 1,
            *row[4:12],
            embedding_version=row[12],
            request_id=row[13],
            taken_over_from=row[14],
            lease_expired_for=None if row[14] is None else float(row[15]),
        )  # type: ignore[call-arg, misc]
        for row in claimed_rows
    ]


def renew_leases(conn: Connection, docs: Sequence[ClaimedDocument], worker: str, lease: timedelta) -> int:
    """Push the leases of DOCS that this worker still holds LEASE into the future; how many it still holds."""
    result = conn.execute(
        update(Document)
        .where(
            Document.collection_id.in_({doc.collection_id for doc in docs}),
            Document.id.in_([doc.id for doc in docs]),
            Document.leased_by == worker,
            Document.status == "processing",
        )
        .values(available_at=func.now() + lease)
    )
    return int(result.rowcount)


def next_available_in(conn: Connection) -> float | None:
    """Seconds until the next queued document becomes available (0 if one is), None if the queue is empty."""
    seconds = conn.execute(
        select(func.extract("epoch", func.min(Document.available_at) - func.now())).where(
            Document.status.in_(("pending", "processing"))
        )
    ).scalar()
    return None if seconds is None else max(0.0, float(seconds))


def lock_active_versions(conn: Connection, collection_ids: set[int]) -> dict[int, int]:
    """The active embedding version of each collection, its row locked FOR SHARE (in id order) until commit, so that no
    other version becomes active while vectors of this one are written."""
    rows = conn.execute(
        select(Collection.id, Collection.active_version)
        .where(Collection.id.in_(sorted(collection_ids)))
        .order_by(Collection.id)
        .with_for_update(read=True)
    ).all()
    return {row[0]: row[1] for row in rows}


def requeue(conn: Connection, docs: Sequence[ClaimedDocument], worker: str) -> None:
    """Put DOCS, still leased by WORKER, back in the queue at once, their attempt not counted."""
    for doc in docs:
        conn.execute(
            update(Document)
            .where(
                Document.collection_id == doc.collection_id,
                Document.id == doc.id,
                Document.version == doc.version,
                Document.leased_by == worker,
            )
            .values(status="pending", leased_by=None, available_at=func.now(), attempts=Document.attempts - 1)
        )


def lock_if_still_ours(conn: Connection, doc: ClaimedDocument, worker: str) -> bool:
    """Lock the document row; True if it is still this version and still leased by this worker."""
    row = conn.execute(
        select(Document.version, Document.leased_by, Document.status)
        .where(Document.collection_id == doc.collection_id, Document.id == doc.id)
        .with_for_update()
    ).first()
    return row is not None and tuple(row) == (doc.version, worker, "processing")


def finish(conn: Connection, docs: Sequence[ClaimedDocument]) -> None:
    """Mark DOCS ready."""
    conn.execute(
        update(Document)
        .where(tuple_(Document.collection_id, Document.id).in_([(d.collection_id, d.id) for d in docs]))
        .values(status="ready", error=None, leased_by=None)
    )


def give_back(conn: Connection, doc: ClaimedDocument, worker: str, error: str, retry_in: timedelta | None) -> None:
    """Return a document that failed: to the queue after RETRY_IN, or, with RETRY_IN None, as failed for good."""
    values: dict[str, Any] = {"error": error[:4000], "leased_by": None}
    if retry_in is None:
        values["status"] = "failed"
    else:
        values |= {"status": "pending", "available_at": func.now() + retry_in}
    conn.execute(
        update(Document)
        .where(
            Document.collection_id == doc.collection_id,
            Document.id == doc.id,
            Document.version == doc.version,
            Document.leased_by == worker,
        )
        .values(values)
    )


def workers_connected(conn: Connection) -> int:
    """How many worker connections (memora-worker*, in any process) the database has now."""
    return int(_WORKERS_CONNECTED.run(conn).scalar_one())


@contextmanager
def listener(engine: Engine, application_name: str, *channels: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection of its own that LISTENs on CHANNELS (read it with .notifies()): autocommit, named
    APPLICATION_NAME in pg_stat_activity, and outside ENGINE's pool, so no pooled connection keeps listening."""
    named = {"application_name": application_name}
    own = sibling(engine, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args=named)
    try:
        with own.connect() as conn:
            for channel in channels:
                _LISTEN.run(conn, channel=channel)
            yield cast("psycopg.Connection[Any]", conn.connection.driver_connection)
    finally:
        own.dispose()


def notify(conn: Connection, channel: str, payload: str) -> None:
    """NOTIFY CHANNEL with PAYLOAD, delivered when CONN's transaction commits."""
    _NOTIFY.run(conn, {"channel": channel, "payload": payload})


# Collections whose document counts (015-document-counts.sql) hold more than this many rows get them folded.
COMPACT_ABOVE = 64
_COMPACT = Query("""
SELECT memora.compact_document_count(collection_id)
FROM memora.document_count
GROUP BY collection_id
HAVING count(*) > %(above)s
""")


def compact_counts(conn: Connection) -> int:
    """Fold the document counts of every collection that has many rows into one row per status; rows folded."""
    return sum(_COMPACT.run(conn, {"above": COMPACT_ABOVE}).scalars())
