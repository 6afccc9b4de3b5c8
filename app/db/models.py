"""The data model: collections of documents, their chunks and embeddings; datasets of labeled examples.

Every table lives in one schema (SCHEMA here; another name at run time through the engine's
schema_translate_map). Child tables carry collection_id or dataset_id and lead their primary keys with it, so
the schema can be distributed by that column (Citus) without rewriting keys. docs/schema.md explains the choices.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    FetchedValue,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL, REGCONFIG, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime

from memora_migrations.files import DEFAULT_SCHEMA
from memora_migrations.naming import NAMING_CONVENTION

SCHEMA = DEFAULT_SCHEMA  # another name at run time: MEMORA_DB_SCHEMA, through schema_translate_map

PROVIDERS = ("local", "openai", "hashing")
CONTENT_TYPES = ("text/plain", "text/markdown", "text/html", "application/pdf")
METRICS = ("cosine", "l2", "inner_product")
STORAGE_TYPES = ("vector", "halfvec")
DOCUMENT_STATUSES = ("pending", "processing", "ready", "failed")
TASKS = ("chat", "completion", "classification", "pairs", "triplets", "qa", "custom")
# The shapes an example can have (app/training/formats/records.py); a dataset of any task may mix them.
EXAMPLE_FORMATS = TASKS
# HNSW indexes at most 2,000 dimensions of vector and 4,000 of halfvec (pgvector).
MAX_INDEXED_DIMENSIONS = {"vector": 2000, "halfvec": 4000}


def embedding_partition(collection_id: int) -> str:
    """Name of a collection's partition of embedding (memora.embedding_partition in SQL)."""
    return f"embedding_c{collection_id}"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _metadata() -> Mapped[dict[str, Any]]:
    # `metadata` is taken on declarative classes, so the attribute is metadata_ and the column metadata.
    return mapped_column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb"))


class Meta(Base):
    """Facts about this installation that migrations need later (e.g. whether they created `vector`)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class Collection(Base):
    """A set of documents searched together, embedded by one model into one vector space."""

    __tablename__ = "collection"
    __table_args__ = (
        CheckConstraint(r"name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'", name="name_format"),
        CheckConstraint(_in("embedding_provider", PROVIDERS), name="embedding_provider"),
        CheckConstraint(_in("metric", METRICS), name="metric"),
        CheckConstraint(_in("storage", STORAGE_TYPES), name="storage"),
        CheckConstraint(
            "dimensions >= 1 AND dimensions <= CASE storage WHEN 'halfvec' THEN 4000 ELSE 2000 END",
            name="dimensions",
        ),
        CheckConstraint("hnsw_m BETWEEN 2 AND 100", name="hnsw_m"),
        CheckConstraint("hnsw_ef_construction BETWEEN 2 * hnsw_m AND 1000", name="hnsw_ef_construction"),
        CheckConstraint("jsonb_typeof(chunking) = 'object'", name="chunking_object"),
        CheckConstraint("bm25_k1 >= 0 AND bm25_k1 <= 10", name="bm25_k1"),
        CheckConstraint("bm25_b >= 0 AND bm25_b <= 1", name="bm25_b"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    embedding_provider: Mapped[str] = mapped_column(Text, nullable=False, server_default="local")
    embedding_model: Mapped[str] = mapped_column(Text, nullable=False, server_default="all-MiniLM-L6-v2")
    dimensions: Mapped[int] = mapped_column(Integer, nullable=False, server_default="384")
    metric: Mapped[str] = mapped_column(Text, nullable=False, server_default="cosine")
    storage: Mapped[str] = mapped_column(Text, nullable=False, server_default="vector")
    chunking: Mapped[dict[str, Any]] = mapped_column(
        JSONB,
        nullable=False,
        server_default=text("""'{"strategy": "recursive", "size": 200, "overlap": 32}'::jsonb"""),
    )
    language: Mapped[str] = mapped_column(REGCONFIG, nullable=False, server_default="english")
    hnsw_m: Mapped[int] = mapped_column(Integer, nullable=False, server_default="16")
    hnsw_ef_construction: Mapped[int] = mapped_column(Integer, nullable=False, server_default="64")
    # BM25 parameters of text search (sql/idempotent/005-search-bm25.sql).
    bm25_k1: Mapped[float] = mapped_column(REAL, nullable=False, server_default="0.9")
    bm25_b: Mapped[float] = mapped_column(REAL, nullable=False, server_default="0.4")
    metadata_: Mapped[dict[str, Any]] = _metadata()
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()


class Document(Base):
    """One source document; the worker turns it into chunks and embeddings."""

    __tablename__ = "document"
    __table_args__ = (
        UniqueConstraint("collection_id", "external_id"),
        CheckConstraint(_in("status", DOCUMENT_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint("jsonb_typeof(metadata) = 'object'", name="metadata_object"),
        Index(
            "ix_document_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ),
        CheckConstraint(_in("content_type", CONTENT_TYPES), name="content_type"),
        # The worker's queue: claimable documents in the order they become available.
        Index("ix_document_queue", "available_at", postgresql_where=text("status IN ('pending', 'processing')")),
    )

    collection_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(Collection.id, ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    external_id: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    content: Mapped[str] = mapped_column(Text, nullable=False)
    # What content is: plain text, Markdown, text extracted from HTML, or PDF text with a form feed between pages.
    content_type: Mapped[str] = mapped_column(Text, nullable=False, server_default="text/plain")
    # Filled by a trigger (sql/idempotent), so rows inserted from psql get it too.
    content_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, server_default=FetchedValue())
    metadata_: Mapped[dict[str, Any]] = _metadata()
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    # When a worker may next claim it: now for new work, after a backoff for a retry, or when a lease expires.
    available_at: Mapped[datetime] = _created_at()
    leased_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()


class Chunk(Base):
    """A span of a document: document.content[char_start:char_end] == text."""

    __tablename__ = "chunk"
    __table_args__ = (
        ForeignKeyConstraint(
            ["collection_id", "document_id"], [Document.collection_id, Document.id], ondelete="CASCADE"
        ),
        # Deferrable, so one UPDATE can renumber the chunks that survive an edit.
        UniqueConstraint("collection_id", "document_id", "ordinal", deferrable=True),
        # Unchanged text (in this document or any other of the collection) reuses its vector.
        Index("ix_chunk_collection_id_content_hash", "collection_id", "content_hash"),
        CheckConstraint("char_start >= 0 AND char_end >= char_start", name="char_span"),
        CheckConstraint("ordinal >= 0", name="ordinal"),
        Index("ix_chunk_tsv", "tsv", postgresql_using="gin"),
    )

    collection_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    document_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    ordinal: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    char_start: Mapped[int] = mapped_column(Integer, nullable=False)
    char_end: Mapped[int] = mapped_column(Integer, nullable=False)
    token_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # SHA-256 of the text the vector was computed from (title and text, see app/ingest/pipeline.py).
    content_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # What the chunk is indexed under at weight A: the document title, plus the heading path for Markdown.
    title: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    # The collection's text search configuration, copied so the tsvector can be a generated column.
    language: Mapped[str] = mapped_column(REGCONFIG, nullable=False)
    metadata_: Mapped[dict[str, Any]] = _metadata()
    tsv: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(
            "setweight(to_tsvector(language, title), 'A') || setweight(to_tsvector(language, text), 'B')",
            persisted=True,
        ),
    )
    created_at: Mapped[datetime] = _created_at()


class Embedding(Base):
    """The vector of one chunk under one embedding model.

    Partitioned by collection: each collection gets its own partition with an HNSW index whose opclass matches
    the collection's metric and storage type (created by a trigger on collection, sql/idempotent/).
    """

    __tablename__ = "embedding"
    __table_args__ = (
        ForeignKeyConstraint(["collection_id", "chunk_id"], [Chunk.collection_id, Chunk.id], ondelete="CASCADE"),
        {"postgresql_partition_by": "LIST (collection_id)"},
    )

    collection_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    chunk_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    embedding: Mapped[Any] = mapped_column(VECTOR(), nullable=False)
    created_at: Mapped[datetime] = _created_at()


class TextStats(Base):
    """BM25 statistics of a collection's chunks, kept by triggers on chunk (sql/idempotent/003-text-stats.sql)."""

    __tablename__ = "text_stats"

    collection_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(Collection.id, ondelete="CASCADE"), primary_key=True
    )
    chunks: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Sum of the chunks' lengths: their numbers of distinct terms, length(tsv).
    total_length: Mapped[int] = mapped_column(BigInteger, nullable=False)


class TermStats(Base):
    """Document frequency of a lexeme in a collection: how many chunks contain it."""

    __tablename__ = "term_stats"

    collection_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(Collection.id, ondelete="CASCADE"), primary_key=True
    )
    lexeme: Mapped[str] = mapped_column(Text, primary_key=True)
    df: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Dataset(Base):
    """A named set of labeled training examples for one task, with the rule that splits it (docs/training.md)."""

    __tablename__ = "dataset"
    __table_args__ = (
        CheckConstraint(r"name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'", name="name_format"),
        CheckConstraint(_in("task", TASKS), name="task"),
        CheckConstraint("jsonb_typeof(split_ratios) = 'object'", name="split_ratios_object"),
        CheckConstraint("next_seq >= 0", name="next_seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    task: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    metadata_: Mapped[dict[str, Any]] = _metadata()
    # The split rule: an example's split is a function of its text_hash, this seed and these ratios
    # (memora.split_of), so re-running gives the same split and new examples join the split their hash says.
    split_seed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    split_ratios: Mapped[dict[str, float]] = mapped_column(
        JSONB, nullable=False, server_default=text("""'{"train": 0.8, "validation": 0.1, "test": 0.1}'::jsonb""")
    )
    split_stratified: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    # The next example's seq: examples are numbered densely per dataset for keyset paging and shuffling.
    next_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()


class Example(Base):
    """One labeled training example; tokenized fields are integer arrays."""

    __tablename__ = "example"
    __table_args__ = (
        UniqueConstraint("dataset_id", "content_hash"),
        ForeignKeyConstraint(
            ["source_collection_id", "source_document_id"],
            [Document.collection_id, Document.id],
            ondelete="SET NULL (source_document_id)",
        ),
        ForeignKeyConstraint(
            ["source_collection_id", "source_chunk_id"],
            [Chunk.collection_id, Chunk.id],
            ondelete="SET NULL (source_chunk_id)",
        ),
        UniqueConstraint("dataset_id", "seq"),
        CheckConstraint("split IN ('train', 'validation', 'test')", name="split"),
        CheckConstraint("jsonb_typeof(metadata) = 'object'", name="metadata_object"),
        CheckConstraint(_in("format", EXAMPLE_FORMATS), name="format"),
        CheckConstraint("token_count >= 0", name="token_count"),
        # Keyset pages of one split, in seq order (batches, exports).
        Index("ix_example_dataset_id_split_seq", "dataset_id", "split", "seq"),
        Index("ix_example_dataset_id_text_hash", "dataset_id", "text_hash"),
        Index("ix_example_dataset_id_label", "dataset_id", "label"),
        Index("ix_example_labels", "labels", postgresql_using="gin"),
        # Deleting a document or chunk looks up the examples that cite it.
        Index(
            "ix_example_source_document",
            "source_collection_id",
            "source_document_id",
            postgresql_where=text("source_document_id IS NOT NULL"),
        ),
        Index(
            "ix_example_source_chunk",
            "source_collection_id",
            "source_chunk_id",
            postgresql_where=text("source_chunk_id IS NOT NULL"),
        ),
    )

    dataset_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(Dataset.id, ondelete="CASCADE"), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Dense per dataset (from dataset.next_seq), never reused: the order of pages and the domain of shuffles.
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=FetchedValue())
    format: Mapped[str] = mapped_column(Text, nullable=False)
    # Filled from the dataset's split rule when not given (memora.example_before_insert).
    split: Mapped[str | None] = mapped_column(Text, server_default=FetchedValue())
    input: Mapped[Any] = mapped_column(JSONB, nullable=False)
    output: Mapped[Any | None] = mapped_column(JSONB)
    label: Mapped[str | None] = mapped_column(Text)
    labels: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    metadata_: Mapped[dict[str, Any]] = _metadata()
    source_collection_id: Mapped[int | None] = mapped_column(BigInteger)
    source_document_id: Mapped[int | None] = mapped_column(BigInteger)
    source_chunk_id: Mapped[int | None] = mapped_column(BigInteger)
    # SHA-256 of the whole example (memora.example_hash): the same example imported again is not stored twice.
    content_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, server_default=FetchedValue())
    # SHA-256 of its normalised text (memora.text_hash): exact duplicates, and the key of its split.
    text_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, server_default=FetchedValue())
    token_count: Mapped[int | None] = mapped_column(Integer)
    embedding: Mapped[Any | None] = mapped_column(VECTOR())
    input_ids: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))
    attention_mask: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))
    token_type_ids: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))
    start_positions: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))
    end_positions: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))
    created_at: Mapped[datetime] = _created_at()
    # A tombstone: deleted from the live dataset but still held by a snapshot (purged with its last snapshot).
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Snapshot(Base):
    """A frozen, named version of a dataset: which examples, with which content and split, forever."""

    __tablename__ = "snapshot"
    __table_args__ = (
        UniqueConstraint("dataset_id", "name"),
        CheckConstraint(r"name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'", name="name_format"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(Dataset.id, ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    examples: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # {"train": n, "validation": n, "test": n, "none": n} at freezing time.
    split_counts: Mapped[dict[str, int]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = _created_at()


class SnapshotExample(Base):
    """One example of a snapshot: seq is dense (0..examples-1) within the snapshot; rows never change."""

    __tablename__ = "snapshot_example"
    __table_args__ = (
        # RESTRICT: an example a snapshot holds is tombstoned, never deleted (app/training/datasets/service.py).
        ForeignKeyConstraint(["dataset_id", "example_id"], [Example.dataset_id, Example.id], ondelete="RESTRICT"),
        Index("ix_snapshot_example_snapshot_id_split_seq", "snapshot_id", "split", "seq"),
        Index("ix_snapshot_example_dataset_id_example_id", "dataset_id", "example_id"),
        CheckConstraint("split IN ('train', 'validation', 'test')", name="split"),
    )

    snapshot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(Snapshot.id, ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    example_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    content_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    split: Mapped[str | None] = mapped_column(Text)


class FinetuneJob(Base):
    """A fine-tuning job started from a snapshot: lineage from data to model (which snapshot trained which model)."""

    __tablename__ = "finetune_job"
    __table_args__ = (UniqueConstraint("base_url", "provider_job_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Names are copied so the lineage outlives the dataset and snapshot rows.
    dataset_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(Dataset.id, ondelete="SET NULL"))
    snapshot_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(Snapshot.id, ondelete="SET NULL"))
    dataset_name: Mapped[str] = mapped_column(Text, nullable=False)
    snapshot_name: Mapped[str] = mapped_column(Text, nullable=False)
    base_url: Mapped[str] = mapped_column(Text, nullable=False)
    model: Mapped[str] = mapped_column(Text, nullable=False)
    suffix: Mapped[str | None] = mapped_column(Text)
    training_file_id: Mapped[str] = mapped_column(Text, nullable=False)
    validation_file_id: Mapped[str | None] = mapped_column(Text)
    provider_job_id: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False)
    fine_tuned_model: Mapped[str | None] = mapped_column(Text)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()
