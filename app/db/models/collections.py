"""The tables of collections: documents, their chunks and embeddings, and the statistics BM25 reads."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    FetchedValue,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, REAL, REGCONFIG, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

if TYPE_CHECKING:
    from app.db.models.training import Dataset

from app.db.models.base import (
    CONTENT_TYPES,
    DOCUMENT_STATUSES,
    METRICS,
    PROVIDERS,
    STORAGE_TYPES,
    VERSION_SOURCES,
    VERSION_STATUSES,
    Base,
    created_at_column,
    in_list,
    metadata_column,
)


class Collection(Base):
    """A set of documents searched together, embedded by one model into one vector space."""

    __tablename__ = "collection"
    __table_args__ = (
        CheckConstraint(r"name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'", name="name_format"),
        CheckConstraint(in_list("embedding_provider", PROVIDERS), name="embedding_provider"),
        CheckConstraint(in_list("metric", METRICS), name="metric"),
        CheckConstraint(in_list("storage", STORAGE_TYPES), name="storage"),
        CheckConstraint(
            "dimensions >= 1 AND dimensions <= CASE storage WHEN 'halfvec' THEN 4000 ELSE 2000 END",
            name="dimensions",
        ),
        CheckConstraint("hnsw_m BETWEEN 2 AND 100", name="hnsw_m"),
        CheckConstraint("hnsw_ef_construction BETWEEN 2 * hnsw_m AND 1000", name="hnsw_ef_construction"),
        CheckConstraint("jsonb_typeof(chunking) = 'object'", name="chunking_object"),
        CheckConstraint("bm25_k1 >= 0 AND bm25_k1 <= 10", name="bm25_k1"),
        CheckConstraint("bm25_b >= 0 AND bm25_b <= 1", name="bm25_b"),
        # The version searches read (migration 0009). Checked at commit: a new collection's version 1 is made by a
        # trigger after its row.
        ForeignKeyConstraint(
            ["id", "active_version"],
            ["embedding_version.collection_id", "embedding_version.number"],
            deferrable=True,
            initially="DEFERRED",
            use_alter=True,
        ),
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
    metadata_: Mapped[dict[str, Any]] = metadata_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()
    # The embedding version searches read; the model columns above are its (sql/idempotent/014).
    active_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    # Where search feedback on the collection is kept, as labeled pairs (app/versions/feedback.py).
    feedback_dataset_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("dataset.id", ondelete="SET NULL", use_alter=True)
    )
    feedback_dataset: Mapped[Dataset | None] = relationship(lazy="select")


class EmbeddingVersion(Base):
    """One version of a collection's vectors: the model that makes them and how they are stored and indexed.

    Each version's vectors are a partition of the collection's partition of embedding, with an HNSW index of its own
    (made by a trigger on this table, sql/idempotent/014-embedding-versions.sql).
    """

    __tablename__ = "embedding_version"
    __table_args__ = (
        CheckConstraint("number >= 1", name="number"),
        CheckConstraint(in_list("status", VERSION_STATUSES), name="status"),
        CheckConstraint(in_list("source", VERSION_SOURCES), name="source"),
        CheckConstraint(in_list("embedding_provider", PROVIDERS), name="embedding_provider"),
        CheckConstraint(in_list("metric", METRICS), name="metric"),
        CheckConstraint(in_list("storage", STORAGE_TYPES), name="storage"),
        CheckConstraint(
            "dimensions >= 1 AND dimensions <= CASE storage WHEN 'halfvec' THEN 4000 ELSE 2000 END",
            name="dimensions",
        ),
        CheckConstraint("hnsw_m BETWEEN 2 AND 100", name="hnsw_m"),
        CheckConstraint("hnsw_ef_construction BETWEEN 2 * hnsw_m AND 1000", name="hnsw_ef_construction"),
    )

    collection_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(Collection.id, ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    embedding_provider: Mapped[str] = mapped_column(Text, nullable=False)
    embedding_model: Mapped[str] = mapped_column(Text, nullable=False)
    dimensions: Mapped[int] = mapped_column(Integer, nullable=False)
    metric: Mapped[str] = mapped_column(Text, nullable=False)
    storage: Mapped[str] = mapped_column(Text, nullable=False)
    hnsw_m: Mapped[int] = mapped_column(Integer, nullable=False)
    hnsw_ef_construction: Mapped[int] = mapped_column(Integer, nullable=False)
    # building while chunks lack its vectors (the worker fills them), ready once none does, failed when its model
    # refused for good (error says why).
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="building")
    error: Mapped[str | None] = mapped_column(Text)
    # worker: the worker embeds every chunk; import: the client sends the vectors (POST .../vectors).
    source: Mapped[str] = mapped_column(Text, nullable=False, server_default="worker")
    # A version trained as an adapter of another: its training report, with the base version's number; the map
    # itself is in embedding_adapter, applied to query vectors before they search this version.
    adapter: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Made active by the backfill as soon as it is ready (PATCH /v1/collections/{name} with a new model makes one).
    activate_when_ready: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    # The backfill's place (a chunk id), and the worker that holds it until lease_until.
    backfill_after: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    leased_by: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()


class EmbeddingAdapter(Base):
    """One row of a version's adapter: query vector q becomes (weights_0 . q, weights_1 . q, ...) before it searches
    the version (sql/idempotent/014-embedding-versions.sql, memora.adapt_query)."""

    __tablename__ = "embedding_adapter"
    __table_args__ = (
        ForeignKeyConstraint(
            ["collection_id", "version"],
            [EmbeddingVersion.collection_id, EmbeddingVersion.number],
            ondelete="CASCADE",
        ),
    )

    collection_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    row: Mapped[int] = mapped_column(Integer, primary_key=True)
    weights: Mapped[Any] = mapped_column(VECTOR(), nullable=False)


class Document(Base):
    """One source document; the worker turns it into chunks and embeddings."""

    __tablename__ = "document"
    __table_args__ = (
        UniqueConstraint("collection_id", "external_id"),
        CheckConstraint(in_list("status", DOCUMENT_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint("jsonb_typeof(metadata) = 'object'", name="metadata_object"),
        Index(
            "ix_document_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ),
        CheckConstraint(in_list("content_type", CONTENT_TYPES), name="content_type"),
        # The worker's queue: claimable documents in the order they become available.
        Index("ix_document_queue", "available_at", postgresql_where=text("status IN ('pending', 'processing')")),
        # Pages of one status that is not 'ready' (those page by the primary key): failed documents among many.
        Index("ix_document_status", "collection_id", "status", "id", postgresql_where=text("status <> 'ready'")),
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
    metadata_: Mapped[dict[str, Any]] = metadata_column()
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    # When a worker may next claim it: now for new work, after a backoff for a retry, or when a lease expires.
    available_at: Mapped[datetime] = created_at_column()
    leased_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()
    # X-Request-ID of the request that created or last changed the document: the worker's log lines carry it.
    request_id: Mapped[str | None] = mapped_column(Text)


class DocumentCount(Base):
    """Signed changes to how many of a collection's documents are in a status, appended by statement triggers on
    document (sql/idempotent/015-document-counts.sql); a count is the sum of its rows."""

    __tablename__ = "document_count"

    # No foreign key: see migration 0011 (a deleted collection's rows go by a trigger on collection). The key leads
    # with collection_id, the distribution column under Citus (migration 0012).
    collection_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    status: Mapped[str] = mapped_column(Text, nullable=False)
    n: Mapped[int] = mapped_column(BigInteger, nullable=False)


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
    metadata_: Mapped[dict[str, Any]] = metadata_column()
    tsv: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(
            "setweight(to_tsvector(language, title), 'A') || setweight(to_tsvector(language, text), 'B')",
            persisted=True,
        ),
    )
    created_at: Mapped[datetime] = created_at_column()


class Embedding(Base):
    """The vector of one chunk in one version of its collection's embeddings.

    Partitioned by collection, and each collection's partition by version: each version gets its own table with an
    HNSW index whose opclass matches its metric and storage type (created by triggers, sql/idempotent/014).
    """

    __tablename__ = "embedding"
    __table_args__ = (
        ForeignKeyConstraint(["collection_id", "chunk_id"], [Chunk.collection_id, Chunk.id], ondelete="CASCADE"),
        {"postgresql_partition_by": "LIST (collection_id)"},
    )

    collection_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    chunk_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, server_default="1")
    model: Mapped[str] = mapped_column(Text, nullable=False)
    embedding: Mapped[Any] = mapped_column(VECTOR(), nullable=False)
    created_at: Mapped[datetime] = created_at_column()


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


class Posting(Base):
    """A lexeme of a chunk, with its tf there and the chunk's length: what BM25 reads (migration 0008). The triggers
    of sql/idempotent/005-search-bm25.sql keep it; nothing in Python writes it."""

    __tablename__ = "posting"
    __table_args__ = (PrimaryKeyConstraint("collection_id", "lexeme", "chunk_id", postgresql_include=["tf", "len"]),)

    collection_id: Mapped[int] = mapped_column(BigInteger)
    lexeme: Mapped[str] = mapped_column(Text)
    chunk_id: Mapped[int] = mapped_column(BigInteger)
    # Positions of the lexeme in the chunk's tsvector (1 when it has none), and the chunk's length(tsv).
    tf: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    len: Mapped[int] = mapped_column(Integer, nullable=False)
