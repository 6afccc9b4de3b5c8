"""From a claimed document to its chunks and vectors, changing only what changed.

A chunk is identified by the hash of the text its vector is computed from (the title it is indexed under, then its
text). When a document changes, chunks whose hash survives keep their row, id and vector; only new hashes are
embedded, and a hash already embedded anywhere in the collection reuses that vector.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Connection

from app.embeddings.base import Tokenizer, WordTokenizer
from app.ingest import chunk_repository
from app.ingest.chunk_repository import StoredChunk
from app.ingest.chunking import ChunkingSpec, chunk_text
from app.ingest.repository import ClaimedDocument


@dataclass(frozen=True)
class PlannedChunk:
    ordinal: int
    text: str
    char_start: int
    char_end: int
    token_count: int
    title: str
    metadata: dict[str, Any]
    content_hash: bytes

    @property
    def embedding_input(self) -> str:
        return embedding_input(self.title, self.text)


@dataclass(frozen=True)
class ChunkInput:
    """A chunk with its vector computed by the caller (bring your own embeddings)."""

    text: str
    embedding: list[float]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GivenDocument:
    """A document that brought its chunks and vectors: nothing to claim, chunk or embed; it is written in the
    transaction that stores it, and its chunks take the collection's language and model."""

    collection_id: int
    id: int
    title: str
    content: str
    language: str
    model: str
    chunks: Sequence[ChunkInput]
    embedding_version: int = 1


def embedding_input(title: str, text: str) -> str:
    """What the model sees for a chunk: its title (document title, heading path) above its text."""
    return f"{title}\n\n{text}" if title else text


def chunk_hash(title: str, text: str) -> bytes:
    return hashlib.sha256(embedding_input(title, text).encode()).digest()


def plan(doc: ClaimedDocument, tokenizer: Tokenizer) -> list[PlannedChunk]:
    """The chunks DOC should have now."""
    spec = ChunkingSpec.from_json(doc.chunking)
    planned = []
    for piece in chunk_text(doc.content, spec, tokenizer, doc.content_type):
        title = _title(doc.title, piece.title_suffix)
        digest = chunk_hash(title, piece.text)
        planned.append(
            PlannedChunk(
                piece.ordinal,
                piece.text,
                piece.char_start,
                piece.char_end,
                piece.token_count,
                title,
                piece.metadata,
                digest,
            )
        )
    return planned


def plan_given(doc: GivenDocument) -> tuple[list[PlannedChunk], dict[bytes, Any]]:
    """The chunks and vectors DOC brought, placed in its content (each after the previous one)."""
    planned: list[PlannedChunk] = []
    vectors: dict[bytes, Any] = {}
    position = 0
    tokenizer = WordTokenizer()  # token_count of given chunks is an estimate: their model's tokenizer is unknown
    for ordinal, chunk in enumerate(doc.chunks):
        start = doc.content.index(chunk.text, position)
        position = start + len(chunk.text)
        digest = chunk_hash(doc.title, chunk.text)
        tokens = len(tokenizer.token_spans(chunk.text))
        planned.append(PlannedChunk(ordinal, chunk.text, start, position, tokens, doc.title, chunk.metadata, digest))
        vectors[digest] = np.asarray(chunk.embedding, dtype=np.float32)
    return planned, vectors


class Target(Protocol):
    """What writing a document's chunks needs of it: where it is, the language its chunks are indexed in, and the
    model and embedding version its vectors belong to (a claimed document, or one that brought its own vectors)."""

    @property
    def collection_id(self) -> int: ...
    @property
    def id(self) -> int: ...
    @property
    def language(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def embedding_version(self) -> int: ...


Item = tuple[Target, list[PlannedChunk], dict[bytes, Any]]
"""A document, the chunks it should have now, and a vector for every hash that needs one."""


def write_many(conn: Connection, items: Sequence[Item]) -> None:
    """Make the stored chunks of each document equal its planned ones, with one statement per step for all of
    them (one read, delete, update and two COPYs)."""
    stored = chunk_repository.stored_chunks_of(conn, [(doc.collection_id, doc.id) for doc, _, _ in items])
    gone: list[tuple[int, int]] = []
    changes: list[dict[str, Any]] = []
    fresh: list[tuple[Target, PlannedChunk]] = []
    revector: list[tuple[Target, int, bytes]] = []
    for doc, planned, _ in items:
        unclaimed: dict[bytes, deque[StoredChunk]] = defaultdict(deque)
        for old in stored.get((doc.collection_id, doc.id), []):
            unclaimed[old.content_hash].append(old)
        for chunk in planned:
            matches = unclaimed.get(chunk.content_hash)
            if not matches:
                fresh.append((doc, chunk))
                continue
            old = matches.popleft()
            if _differs(old, chunk, doc.language):
                changes.append(_changes(doc.collection_id, old, chunk, doc.language))
            if not old.has_vector:
                revector.append((doc, old.id, old.content_hash))
        gone += [(doc.collection_id, old.id) for matches in unclaimed.values() for old in matches]

    chunk_repository.delete_chunks(conn, gone)
    chunk_repository.update_chunks(conn, changes)
    ids = chunk_repository.new_chunk_ids(conn, len(fresh))
    chunk_repository.copy_chunks(
        conn,
        [
            (doc.collection_id, chunk_id, doc.id, c.ordinal, c.text, c.char_start, c.char_end, c.token_count,
             c.content_hash, c.title, doc.language, c.metadata)
            for chunk_id, (doc, c) in zip(ids, fresh, strict=True)
        ],
    )  # fmt: skip
    revector += [(doc, chunk_id, c.content_hash) for chunk_id, (doc, c) in zip(ids, fresh, strict=True)]
    vectors = {doc.id: doc_vectors for doc, _, doc_vectors in items}
    chunk_repository.copy_embeddings(
        conn,
        [
            (doc.collection_id, chunk_id, doc.embedding_version, doc.model, vectors[doc.id][digest])
            for doc, chunk_id, digest in revector
        ],
    )


def _title(document_title: str, heading_path: str) -> str:
    """The document title, then the heading path, without repeating a first heading that is the title."""
    parts = heading_path.split(" > ") if heading_path else []
    if parts and parts[0] == document_title:
        parts = parts[1:]
    return " > ".join([document_title, *parts] if document_title else parts)


def _differs(old: StoredChunk, new: PlannedChunk, language: str) -> bool:
    return (old.ordinal, old.char_start, old.char_end, old.token_count, old.title, old.language, old.metadata) != (
        new.ordinal, new.char_start, new.char_end, new.token_count, new.title, language, new.metadata
    )  # fmt: skip


def _changes(collection_id: int, old: StoredChunk, new: PlannedChunk, language: str) -> dict[str, Any]:
    return {
        "collection_id": collection_id,
        "id": old.id,
        "ordinal": new.ordinal,
        "char_start": new.char_start,
        "char_end": new.char_end,
        "token_count": new.token_count,
        "title": new.title,
        "language": language,
        "metadata_": new.metadata,
    }
