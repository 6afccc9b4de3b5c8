"""The queries of ingestion: the document queue, and reading and writing a document's chunks and vectors."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, and_, bindparam, delete, func, literal, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.types import LargeBinary

from app.db.models import Chunk, Collection, Document, Embedding
from app.db.query import schema_of
from app.embeddings.base import Vectors


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


@dataclass(frozen=True)
class StoredChunk:
    id: int
    ordinal: int
    content_hash: bytes
    char_start: int
    char_end: int
    token_count: int
    title: str
    language: str
    metadata: dict[str, Any]
    has_vector: bool


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
        )
        .join(claimed, and_(Document.collection_id == claimed.c.collection_id, Document.id == claimed.c.id))
        .join(Collection, Collection.id == Document.collection_id)
    ).all()
    # The outer SELECT sees the rows as they were before the UPDATE: take version from there, attempts + 1.
    return [ClaimedDocument(*row[:3], row[3] + 1, *row[4:]) for row in rows]  # type: ignore[call-arg, arg-type]


def renew_leases(conn: Connection, docs: Sequence[ClaimedDocument], worker: str, lease: timedelta) -> None:
    """Push the leases of DOCS that this worker still holds LEASE into the future."""
    conn.execute(
        update(Document)
        .where(
            Document.collection_id.in_({doc.collection_id for doc in docs}),
            Document.id.in_([doc.id for doc in docs]),
            Document.leased_by == worker,
            Document.status == "processing",
        )
        .values(available_at=func.now() + lease)
    )


def next_available_in(conn: Connection) -> float | None:
    """Seconds until the next queued document becomes available (0 if one is), None if the queue is empty."""
    seconds = conn.execute(
        select(func.extract("epoch", func.min(Document.available_at) - func.now())).where(
            Document.status.in_(("pending", "processing"))
        )
    ).scalar()
    return None if seconds is None else max(0.0, float(seconds))


def lock_if_still_ours(conn: Connection, doc: ClaimedDocument, worker: str) -> bool:
    """Lock the document row; True if it is still this version and still leased by this worker."""
    row = conn.execute(
        select(Document.version, Document.leased_by, Document.status)
        .where(Document.collection_id == doc.collection_id, Document.id == doc.id)
        .with_for_update()
    ).first()
    return row is not None and tuple(row) == (doc.version, worker, "processing")


def stored_chunks_of(conn: Connection, docs: Sequence[ClaimedDocument]) -> dict[tuple[int, int], list[StoredChunk]]:
    """The stored chunks of DOCS by (collection_id, document_id), each saying whether it has a vector of its
    collection's model."""
    if not docs:
        return {}
    has_vector = (
        select(Embedding.chunk_id)
        .where(
            Embedding.collection_id == Chunk.collection_id,
            Embedding.chunk_id == Chunk.id,
            Embedding.model == Collection.embedding_model,
        )
        .exists()
    )
    rows = conn.execute(
        select(
            Chunk.collection_id,
            Chunk.document_id,
            Chunk.id,
            Chunk.ordinal,
            Chunk.content_hash,
            Chunk.char_start,
            Chunk.char_end,
            Chunk.token_count,
            Chunk.title,
            Chunk.language,
            Chunk.metadata_,
            has_vector,
        )
        .join(Collection, Collection.id == Chunk.collection_id)
        .where(or_(*_documents_of_collections(docs)))
        .order_by(Chunk.collection_id, Chunk.document_id, Chunk.ordinal)
    ).all()
    found: dict[tuple[int, int], list[StoredChunk]] = defaultdict(list)
    for row in rows:
        found[(row[0], row[1])].append(StoredChunk(*row[2:]))  # type: ignore[call-arg]
    return found


def _documents_of_collections(docs: Sequence[ClaimedDocument]) -> list[Any]:
    """collection_id = c AND document_id IN (...) per collection: with stale statistics (a first import) a row
    comparison of (collection_id, document_id) was planned as a scan of the whole collection's chunks."""
    by_collection: dict[int, list[int]] = defaultdict(list)
    for doc in docs:
        by_collection[doc.collection_id].append(doc.id)
    return [and_(Chunk.collection_id == cid, Chunk.document_id.in_(ids)) for cid, ids in by_collection.items()]


def known_vectors(conn: Connection, collection_id: int, model: str, hashes: Iterable[bytes]) -> dict[bytes, Any]:
    """Vectors already computed in this collection for any of these chunk hashes."""
    wanted = list(set(hashes))
    if not wanted:
        return {}
    rows = conn.execute(
        select(Chunk.content_hash, Embedding.embedding)
        .ext(distinct_on(Chunk.content_hash))
        .join(Embedding, and_(Embedding.collection_id == Chunk.collection_id, Embedding.chunk_id == Chunk.id))
        .where(
            Chunk.collection_id == collection_id,
            Embedding.model == model,
            Chunk.content_hash == func.any(literal(wanted, ARRAY(LargeBinary))),
        )
    ).all()
    return {row[0]: row[1] for row in rows}


def delete_chunks(conn: Connection, keys: Sequence[tuple[int, int]]) -> None:
    """Delete chunks by (collection_id, id); their vectors go with them."""
    if keys:
        conn.execute(delete(Chunk).where(tuple_(Chunk.collection_id, Chunk.id).in_(list(keys))))


def update_chunks(conn: Connection, changes: Sequence[dict[str, Any]]) -> None:
    """Renumber and re-describe chunks that survive an edit; ordinals may swap, so uniqueness is checked at commit."""
    if not changes:
        return
    conn.execute(text("SET CONSTRAINTS ALL DEFERRED"))
    columns = ("ordinal", "char_start", "char_end", "token_count", "title", "language", "metadata_")
    statement = (
        update(Chunk)
        .where(Chunk.collection_id == bindparam("chunk_collection_id"), Chunk.id == bindparam("chunk_id"))
        .values({column: bindparam(f"new_{column}") for column in columns})
    )
    params = [
        {"chunk_collection_id": c["collection_id"], "chunk_id": c["id"], **{f"new_{k}": c[k] for k in columns}}
        for c in changes
    ]
    conn.execute(statement, params)


def new_chunk_ids(conn: Connection, count: int) -> list[int]:
    """Reserve ids for chunks about to be copied in."""
    if count == 0:
        return []
    sequence = func.pg_get_serial_sequence(func.format("%I.%I", schema_of(conn), "chunk"), "id")
    return list(conn.execute(select(func.nextval(sequence)).select_from(func.generate_series(1, count))).scalars())


def copy_chunks(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """COPY (collection_id, id, document_id, ordinal, text, char_start, char_end, token_count, content_hash, title,
    language, metadata) rows; text format, since psycopg has no binary form of regconfig."""
    columns = [
        "collection_id", "id", "document_id", "ordinal", "text", "char_start", "char_end", "token_count",
        "content_hash", "title", "language", "metadata",
    ]  # fmt: skip
    _copy(conn, "chunk", columns, None, [(*row[:-1], Jsonb(row[-1])) for row in rows])


def copy_embeddings(conn: Connection, rows: Sequence[tuple[int, int, str, Vectors | np.ndarray[Any, Any]]]) -> None:
    """Binary COPY of (collection_id, chunk_id, model, vector) rows."""
    _copy(
        conn, "embedding", ["collection_id", "chunk_id", "model", "embedding"], ["int8", "int8", "text", "vector"], rows
    )


def _copy(
    conn: Connection, table: str, columns: list[str], types: list[str] | None, rows: Sequence[Sequence[Any]]
) -> None:
    """COPY rows into TABLE: binary when TYPES are given, else text."""
    if not rows:
        return
    statement = sql.SQL("COPY {} ({}) FROM STDIN {}").format(
        sql.Identifier(schema_of(conn), table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL("(FORMAT BINARY)" if types else ""),
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(statement) as copy:
        if types:
            copy.set_types(types)
        for row in rows:
            copy.write_row(row)


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
