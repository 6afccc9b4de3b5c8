"""The rows and the ways of writing them that benchmarks/write_path.py compares (see docs/benchmarks.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from common import Timings, patched
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb
from rich.progress import Progress
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import SCHEMA, Chunk, Collection, Embedding
from app.ingest import chunk_repository, pipeline, repository, service
from app.ingest.files import UPSERT_BATCH
from app.ingest.pipeline import ChunkInput, PlannedChunk, embedding_input
from app.ingest.repository import ClaimedDocument
from app.ingest.service import DocumentInput
from app.ingest.worker import Worker

DIMENSIONS = 384
MODEL = "all-MiniLM-L6-v2"
WORKER = "bench-worker"
CHUNK_COLUMNS = [
    "collection_id", "id", "document_id", "ordinal", "text", "char_start", "char_end", "token_count",
    "content_hash", "title", "language", "metadata",
]  # fmt: skip
# Binary COPY needs a dumper per column; regconfig is sent as its oid, which is its binary form.
CHUNK_TYPES = ["int8", "int8", "int8", "int4", "text", "int4", "int4", "int4", "bytea", "text", "oid", "jsonb"]
EMBEDDING_COLUMNS = ["collection_id", "chunk_id", "model", "embedding"]
# The chunk_repository functions pipeline.write_many calls, timed one by one.
REPOSITORY_STEPS = (
    "stored_chunks_of",
    "delete_chunks",
    "update_chunks",
    "new_chunk_ids",
    "copy_chunks",
    "copy_embeddings",
)


@dataclass(frozen=True)
class SyntheticDocument:
    id: int
    title: str
    content: str
    chunks: list[PlannedChunk]


@dataclass
class Target:
    """Where a variant writes: a fresh collection with its documents queued as leased by WORKER."""

    url: str
    settings: Settings
    engine: Engine
    collection_id: int
    language_oid: int
    docs: list[SyntheticDocument]
    vectors: dict[bytes, np.ndarray[Any, Any]]
    batch_size: int
    bar: Progress

    @property
    def rows(self) -> int:
        return sum(len(doc.chunks) for doc in self.docs)

    def claimed(self, doc: SyntheticDocument) -> ClaimedDocument:
        """The document as the worker holds it after claim()."""
        return ClaimedDocument(
            self.collection_id, doc.id, 1, 1, doc.title, doc.content, "text/plain", "local", MODEL, DIMENSIONS, {},
            "english",
        )  # fmt: skip

    def chunk_rows(self, doc: SyntheticDocument, ids: Sequence[int]) -> list[tuple[Any, ...]]:
        return [
            (self.collection_id, chunk_id, doc.id, c.ordinal, c.text, c.char_start, c.char_end, c.token_count,
             c.content_hash, c.title, self.language_oid, Jsonb(c.metadata))
            for chunk_id, c in zip(ids, doc.chunks, strict=True)
        ]  # fmt: skip

    def embedding_rows(self, doc: SyntheticDocument, ids: Sequence[int]) -> list[tuple[Any, ...]]:
        return [
            (self.collection_id, chunk_id, MODEL, self.vectors[c.content_hash])
            for chunk_id, c in zip(ids, doc.chunks, strict=True)
        ]


# -- the rows --------------------------------------------------------------------------------------------------


def synthesize(rows: int, per_document: int, words: int, seed: int) -> tuple[list[SyntheticDocument], np.ndarray]:
    """Documents of PER_DOCUMENT chunks of WORDS pseudo-words (Zipf-distributed), and one unit vector per chunk."""
    rng = np.random.default_rng(seed)
    syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]
    vocabulary = np.array(
        sorted({"".join(rng.choice(syllables, size=rng.integers(2, 5))) for _ in range(30_000)}), dtype=object
    )
    rng.shuffle(vocabulary)
    weights = 1.0 / np.arange(1, len(vocabulary) + 1) ** 1.1
    picks = rng.choice(len(vocabulary), size=(rows, words), p=weights / weights.sum())
    vectors = rng.standard_normal((rows, DIMENSIONS), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = []
    for number, start in enumerate(range(0, rows, per_document), start=1):
        title = f"Synthetic document {number}"
        texts = [" ".join(vocabulary[picks[row]]) + "." for row in range(start, min(rows, start + per_document))]
        chunks, offset = [], 0
        for ordinal, text in enumerate(texts):
            digest = hashlib.sha256(embedding_input(title, text).encode()).digest()
            chunks.append(PlannedChunk(ordinal, text, offset, offset + len(text), words, title, {}, digest))
            offset += len(text) + 2
        docs.append(SyntheticDocument(number, title, "\n\n".join(texts), chunks))
    return docs, vectors


# -- the variants ----------------------------------------------------------------------------------------------


def reserve_ids(cursor: psycopg.Cursor[Any], count: int) -> list[int]:
    cursor.execute("SELECT nextval(pg_get_serial_sequence('memora.chunk', 'id')) FROM generate_series(1, %s)", (count,))
    return [row[0] for row in cursor.fetchall()]


def ceiling(target: Target, timings: Timings) -> None:
    """Binary COPY of every chunk row, then every embedding row, in one transaction: the fastest load."""
    task = target.bar.add_task("ceiling: binary COPY", total=2 * target.rows)
    with psycopg.connect(target.url, application_name="memora-bench") as conn:
        register_vector(conn)
        cursor = conn.cursor()
        with timings.step("reserve ids"):
            ids = iter(reserve_ids(cursor, target.rows))
        doc_ids = [[next(ids) for _ in doc.chunks] for doc in target.docs]
        for table, columns, types, rows_of in (
            ("chunk", CHUNK_COLUMNS, CHUNK_TYPES, target.chunk_rows),
            ("embedding", EMBEDDING_COLUMNS, ["int8", "int8", "text", "vector"], target.embedding_rows),
        ):
            statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(SCHEMA, table), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            with timings.step(f"COPY {table}"), cursor.copy(statement) as copy:
                copy.set_types(types)
                for doc, chunk_ids in zip(target.docs, doc_ids, strict=True):
                    for row in rows_of(doc, chunk_ids):
                        copy.write_row(row)
                    target.bar.advance(task, len(chunk_ids))
        with timings.step("commit"):
            conn.commit()
    target.bar.remove_task(task)


def _batches(docs: list[SyntheticDocument], size: int) -> Iterator[list[SyntheticDocument]]:
    for start in range(0, len(docs), size):
        yield docs[start : start + size]


def memora(target: Target, timings: Timings, *, per_document: bool) -> None:
    """The worker's write step, Worker._write, on claimed batches of --batch-size documents (one transaction each),
    or (PER_DOCUMENT) on one document at a time: the worker's fallback, and what a per-document writer pays."""
    worker = Worker(target.settings, target.engine)
    worker.name = WORKER  # the lease the documents were queued under
    size = 1 if per_document else target.batch_size
    task = target.bar.add_task(f"memora: Worker._write, {size} document(s) a transaction", total=len(target.docs))
    with ExitStack() as stack:
        for name in REPOSITORY_STEPS:
            stack.enter_context(patched(chunk_repository, name, timings.wrap(name, getattr(chunk_repository, name))))
        for name in ("lock_if_still_ours", "finish"):
            stack.enter_context(patched(repository, name, timings.wrap(name, getattr(repository, name))))
        for batch in _batches(target.docs, size):
            worker._write([(target.claimed(doc), doc.chunks, target.vectors) for doc in batch])
            target.bar.advance(task, len(batch))
    target.bar.remove_task(task)
    stats = worker.stats
    assert (stats.documents, stats.failed, stats.superseded) == (len(target.docs), 0, 0), stats


def copy_per_batch(target: Target, timings: Timings) -> None:
    """The floor of the worker's batch write: only the repository's id and COPY calls, once per batch, without the
    locks, the read of stored chunks and the status update around them."""
    task = target.bar.add_task(f"floor: COPYs per {target.batch_size} documents", total=len(target.docs))
    for batch in _batches(target.docs, target.batch_size):
        with target.engine.connect() as conn:
            transaction = conn.begin()
            with timings.step("new_chunk_ids"):
                ids = iter(chunk_repository.new_chunk_ids(conn, sum(len(doc.chunks) for doc in batch)))
            chunk_rows, embedding_rows = [], []
            for doc in batch:
                for c in doc.chunks:
                    chunk_id = next(ids)
                    chunk_rows.append(
                        (target.collection_id, chunk_id, doc.id, c.ordinal, c.text, c.char_start, c.char_end,
                         c.token_count, c.content_hash, c.title, "english", c.metadata)
                    )  # fmt: skip
                    embedding_rows.append((target.collection_id, chunk_id, MODEL, target.vectors[c.content_hash]))
            with timings.step("copy_chunks"):
                chunk_repository.copy_chunks(conn, chunk_rows)
            with timings.step("copy_embeddings"):
                chunk_repository.copy_embeddings(conn, embedding_rows)
            with timings.step("commit"):
                transaction.commit()
        target.bar.advance(task, len(batch))
    target.bar.remove_task(task)


def upsert(target: Target, timings: Timings) -> None:
    """service.upsert of documents that bring their own chunks and vectors (POST .../documents with "chunks"),
    UPSERT_BATCH documents a transaction. Unlike the other variants, this one also writes the document rows."""
    task = target.bar.add_task(
        f"memora: upsert with given vectors, {UPSERT_BATCH} documents a transaction", total=len(target.docs)
    )
    with ExitStack() as stack:
        timed = [(chunk_repository, step) for step in REPOSITORY_STEPS]
        timed += [(service, "validate"), (pipeline, "plan_given")]
        for module, name in timed:
            stack.enter_context(patched(module, name, timings.wrap(name, getattr(module, name))))
        for batch in _batches(target.docs, UPSERT_BATCH):
            with timings.outside():
                # As the API hands them over: vectors as lists of floats, parsed from JSON.
                inputs = [
                    DocumentInput(doc.content, f"doc-{doc.id}", doc.title, chunks=[
                        ChunkInput(c.text, target.vectors[c.content_hash].tolist()) for c in doc.chunks
                    ])
                    for doc in batch
                ]  # fmt: skip
            with Session(target.engine) as session:
                transaction = session.begin()
                collection = session.get_one(Collection, target.collection_id)
                results = service.upsert(session, collection, inputs)
                with timings.step("commit"):
                    transaction.commit()
            assert all(result.status == "ready" for result in results)
            target.bar.advance(task, len(batch))
    target.bar.remove_task(task)


def executemany(target: Target, timings: Timings) -> None:
    """psycopg executemany INSERTs (pipelined by psycopg 3), one transaction per document."""
    insert_chunk = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(SCHEMA, "chunk"),
        sql.SQL(", ").join(map(sql.Identifier, CHUNK_COLUMNS)),
        sql.SQL(", ").join(sql.Placeholder() * len(CHUNK_COLUMNS)),
    )
    insert_embedding = sql.SQL("INSERT INTO {} ({}) VALUES (%s, %s, %s, %s)").format(
        sql.Identifier(SCHEMA, "embedding"), sql.SQL(", ").join(map(sql.Identifier, EMBEDDING_COLUMNS))
    )
    task = target.bar.add_task("baseline: psycopg executemany", total=len(target.docs))
    with psycopg.connect(target.url, application_name="memora-bench") as conn:
        register_vector(conn)
        cursor = conn.cursor()
        for doc in target.docs:
            with timings.step("reserve ids"):
                ids = reserve_ids(cursor, len(doc.chunks))
            with timings.step("INSERT chunk"):
                rows = [(*row[:10], "english", row[11]) for row in target.chunk_rows(doc, ids)]
                cursor.executemany(insert_chunk, rows)
            with timings.step("INSERT embedding"):
                cursor.executemany(insert_embedding, target.embedding_rows(doc, ids))
            with timings.step("commit"):
                conn.commit()
            target.bar.advance(task)
    target.bar.remove_task(task)


def orm(target: Target, timings: Timings) -> None:
    """SQLAlchemy ORM: add_all the chunks, flush for their ids, add_all the embeddings; a session per document."""
    task = target.bar.add_task("baseline: SQLAlchemy ORM add_all", total=len(target.docs))
    for doc in target.docs:
        with Session(target.engine) as session:
            with timings.step("add_all chunks + flush"):
                chunks = [
                    Chunk(collection_id=target.collection_id, document_id=doc.id, ordinal=c.ordinal, text=c.text,
                          char_start=c.char_start, char_end=c.char_end, token_count=c.token_count,
                          content_hash=c.content_hash, title=c.title, language="english", metadata_=c.metadata)
                    for c in doc.chunks
                ]  # fmt: skip
                session.add_all(chunks)
                session.flush()
            with timings.step("add_all embeddings + flush"):
                session.add_all(
                    Embedding(collection_id=target.collection_id, chunk_id=chunk.id, model=MODEL,
                              embedding=target.vectors[chunk.content_hash])
                    for chunk in chunks
                )  # fmt: skip
                session.flush()
            with timings.step("commit"):
                session.commit()
        target.bar.advance(task)
    target.bar.remove_task(task)


@dataclass(frozen=True)
class Variant:
    label: str
    run: Callable[[Target, Timings], None]
    # False: the variant writes the document rows itself; the others find them queued and leased.
    documents_first: bool = True


VARIANTS = {
    "ceiling": Variant("ceiling: binary COPY, 1 transaction", ceiling),
    "memora": Variant("memora: Worker._write, tx per batch", lambda t, s: memora(t, s, per_document=False)),
    "memora-doc": Variant("memora: Worker._write, tx per document", lambda t, s: memora(t, s, per_document=True)),
    "memora-upsert": Variant(f"memora: upsert given vectors, tx per {UPSERT_BATCH} docs", upsert, False),
    "copy-batch": Variant("floor: repository COPYs only, per batch", copy_per_batch),
    "executemany": Variant("baseline: psycopg executemany, tx per doc", executemany),
    "orm": Variant("baseline: SQLAlchemy ORM add_all, tx per doc", orm),
}
