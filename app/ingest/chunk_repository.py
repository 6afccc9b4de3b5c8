"""The queries of a document's chunks and vectors: what the write path (app/ingest/pipeline.py) reads and writes,
and the page of them the REST API shows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Row, and_, bindparam, delete, func, literal, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.orm import Session
from sqlalchemy.types import LargeBinary

from app.db.models import Chunk, Collection, Embedding
from app.db.query import Query
from app.embeddings.base import Vectors

_DEFER_CONSTRAINTS = Query("SET CONSTRAINTS ALL DEFERRED")
_NEW_CHUNK_IDS = Query(
    "SELECT nextval(pg_get_serial_sequence('memora.chunk', 'id')) FROM generate_series(1, %(count)s)"
)
# Text format: psycopg has no binary form of regconfig (the language column).
_COPY_CHUNKS = Query(
    "COPY memora.chunk (collection_id, id, document_id, ordinal, text, char_start, char_end, token_count, "
    "content_hash, title, language, metadata) FROM STDIN"
)
_COPY_EMBEDDINGS = Query(
    "COPY memora.embedding (collection_id, chunk_id, version, model, embedding) FROM STDIN (FORMAT BINARY)"
)
_EMBEDDING_TYPES = ["int8", "int8", "int4", "text", "vector"]


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


def stored_chunks_of(conn: Connection, docs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], list[StoredChunk]]:
    """The stored chunks of DOCS, given as (collection_id, document_id), by the same key, each saying whether it
    has a vector in its collection's active embedding version."""
    by_collection: dict[int, list[int]] = defaultdict(list)
    for collection_id, document_id in docs:
        by_collection[collection_id].append(document_id)
    if not by_collection:
        return {}
    has_vector = (
        select(Embedding.chunk_id)
        .where(
            Embedding.collection_id == Chunk.collection_id,
            Embedding.chunk_id == Chunk.id,
            Embedding.version == Collection.active_version,
        )
        .exists()
    )
    # collection_id = c AND document_id IN (...) per collection: with stale statistics (a first import) a row
    # comparison of (collection_id, document_id) was planned as a scan of the whole collection's chunks.
    wanted = [and_(Chunk.collection_id == cid, Chunk.document_id.in_(ids)) for cid, ids in by_collection.items()]
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
        .where(or_(*wanted))
        .order_by(Chunk.collection_id, Chunk.document_id, Chunk.ordinal)
    ).all()
    found: dict[tuple[int, int], list[StoredChunk]] = defaultdict(list)
    for row in rows:
        found[(row[0], row[1])].append(StoredChunk(*row[2:]))  # type: ignore[call-arg]
    return found


def chunk_page(
    db: Session, collection: Collection, document_id: int, *, after: int, limit: int, text_chars: int | None
) -> list[Row[Any]]:
    """Up to LIMIT chunks of the document after ordinal AFTER, in ordinal order: their text (its first TEXT_CHARS
    characters when given), its whole length, and whether the collection's active version has their vector."""
    embedded = (
        select(Embedding.chunk_id)
        .where(
            Embedding.collection_id == collection.id,
            Embedding.chunk_id == Chunk.id,
            # A constant, not a join to collection: the planner then reads only the active version's partition.
            Embedding.version == collection.active_version,
        )
        .exists()
    )
    text = Chunk.text if text_chars is None else func.left(Chunk.text, text_chars)
    query = (
        select(
            Chunk.id,
            Chunk.ordinal,
            Chunk.char_start,
            Chunk.char_end,
            Chunk.token_count,
            Chunk.title,
            Chunk.metadata_.label("metadata"),
            text.label("text"),
            func.length(Chunk.text).label("chars"),
            embedded.label("embedded"),
        )
        .where(Chunk.collection_id == collection.id, Chunk.document_id == document_id, Chunk.ordinal > after)
        .order_by(Chunk.ordinal)
        .limit(limit)
    )
    return list(db.execute(query))


def known_vectors(conn: Connection, collection_id: int, version: int, hashes: Iterable[bytes]) -> dict[bytes, Any]:
    """Vectors already computed in this collection's embedding VERSION for any of these chunk hashes."""
    wanted = list(set(hashes))
    if not wanted:
        return {}
    rows = conn.execute(
        select(Chunk.content_hash, Embedding.embedding)
        .ext(distinct_on(Chunk.content_hash))
        .join(Embedding, and_(Embedding.collection_id == Chunk.collection_id, Embedding.chunk_id == Chunk.id))
        .where(
            Chunk.collection_id == collection_id,
            Embedding.version == version,
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
    _DEFER_CONSTRAINTS.run(conn)
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
    return list(_NEW_CHUNK_IDS.run(conn, {"count": count}).scalars())


def copy_chunks(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """COPY (collection_id, id, document_id, ordinal, text, char_start, char_end, token_count, content_hash, title,
    language, metadata) rows."""
    _copy(conn, _COPY_CHUNKS, None, [(*row[:-1], Jsonb(row[-1])) for row in rows])


def copy_embeddings(
    conn: Connection, rows: Sequence[tuple[int, int, int, str, Vectors | np.ndarray[Any, Any]]]
) -> None:
    """Binary COPY of (collection_id, chunk_id, version, model, vector) rows."""
    _copy(conn, _COPY_EMBEDDINGS, _EMBEDDING_TYPES, rows)


def _copy(conn: Connection, statement: Query, types: list[str] | None, rows: Sequence[Sequence[Any]]) -> None:
    """Write ROWS through the COPY STATEMENT (binary when TYPES are given)."""
    if not rows:
        return
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(statement.sql(conn)) as copy:
        if types:
            copy.set_types(types)
        for row in rows:
            copy.write_row(row)
