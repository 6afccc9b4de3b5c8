"""Initial schema: collections, documents, chunks, embeddings, datasets, examples.

Their functions and triggers (sql/idempotent/001-collection-storage.sql, 002-row-maintenance.sql) are not this
revision's: every migration run applies them after the revisions (memora_migrations.idempotent).

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.dialects import postgresql

from memora_migrations.ops import qualified, schema

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    s = schema()
    op.create_table(
        "meta",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_meta")),
        schema=s,
    )
    # Create the vector extension unless the database has it, and remember who created it: downgrade drops
    # only what this migration made.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'vector') THEN
                CREATE EXTENSION vector;
                INSERT INTO {qualified("meta")} (key, value) VALUES ('created_extension_vector', 'true');
            END IF;
        END
        $$
        """
    )
    op.create_table(
        "collection",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("embedding_provider", sa.Text(), server_default="local", nullable=False),
        sa.Column("embedding_model", sa.Text(), server_default="all-MiniLM-L6-v2", nullable=False),
        sa.Column("dimensions", sa.Integer(), server_default="384", nullable=False),
        sa.Column("metric", sa.Text(), server_default="cosine", nullable=False),
        sa.Column("storage", sa.Text(), server_default="vector", nullable=False),
        sa.Column(
            "chunking",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text('\'{"strategy": "recursive", "size": 200, "overlap": 32}\'::jsonb'),
            nullable=False,
        ),
        sa.Column("language", postgresql.REGCONFIG(), server_default="english", nullable=False),
        sa.Column("hnsw_m", sa.Integer(), server_default="16", nullable=False),
        sa.Column("hnsw_ef_construction", sa.Integer(), server_default="64", nullable=False),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "dimensions >= 1 AND dimensions <= CASE storage WHEN 'halfvec' THEN 4000 ELSE 2000 END",
            name=op.f("ck_collection_dimensions"),
        ),
        sa.CheckConstraint("jsonb_typeof(chunking) = 'object'", name=op.f("ck_collection_chunking_object")),
        sa.CheckConstraint(
            "embedding_provider IN ('local', 'openai', 'hashing')", name=op.f("ck_collection_embedding_provider")
        ),
        sa.CheckConstraint("metric IN ('cosine', 'l2', 'inner_product')", name=op.f("ck_collection_metric")),
        sa.CheckConstraint("name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'", name=op.f("ck_collection_name_format")),
        sa.CheckConstraint("storage IN ('vector', 'halfvec')", name=op.f("ck_collection_storage")),
        sa.CheckConstraint(
            "hnsw_ef_construction BETWEEN 2 * hnsw_m AND 1000",
            name=op.f("ck_collection_hnsw_ef_construction"),
        ),
        sa.CheckConstraint("hnsw_m BETWEEN 2 AND 100", name=op.f("ck_collection_hnsw_m")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection")),
        sa.UniqueConstraint("name", name=op.f("uq_collection_name")),
        schema=s,
    )
    op.create_table(
        "dataset",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("task", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'", name=op.f("ck_dataset_name_format")),
        sa.CheckConstraint(
            "task IN ('chat', 'completion', 'classification', 'pairs', 'triplets', 'qa', 'custom')",
            name=op.f("ck_dataset_task"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset")),
        sa.UniqueConstraint("name", name=op.f("uq_dataset_name")),
        schema=s,
    )
    op.create_table(
        "document",
        sa.Column("collection_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), server_default="", nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), server_default="text/plain", nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("leased_by", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("jsonb_typeof(metadata) = 'object'", name=op.f("ck_document_metadata_object")),
        sa.CheckConstraint("status IN ('pending', 'processing', 'ready', 'failed')", name=op.f("ck_document_status")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_document_attempts")),
        sa.CheckConstraint(
            "content_type IN ('text/plain', 'text/markdown', 'text/html', 'application/pdf')",
            name=op.f("ck_document_content_type"),
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            [f"{s}.collection.id"],
            name=op.f("fk_document_collection_id_collection"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "id", name=op.f("pk_document")),
        sa.UniqueConstraint("collection_id", "external_id", name=op.f("uq_document_collection_id_external_id")),
        schema=s,
    )
    op.create_index(
        "ix_document_metadata",
        "document",
        ["metadata"],
        unique=False,
        schema=s,
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    )
    op.create_index(
        "ix_document_queue",
        "document",
        ["available_at"],
        unique=False,
        schema=s,
        postgresql_where=sa.text("status IN ('pending', 'processing')"),
    )
    op.create_table(
        "chunk",
        sa.Column("collection_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("document_id", sa.BigInteger(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("token_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("title", sa.Text(), server_default="", nullable=False),
        sa.Column("language", postgresql.REGCONFIG(), nullable=False),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "tsv",
            postgresql.TSVECTOR(),
            sa.Computed(
                "setweight(to_tsvector(language, title), 'A') || setweight(to_tsvector(language, text), 'B')",
                persisted=True,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("char_start >= 0 AND char_end >= char_start", name=op.f("ck_chunk_char_span")),
        sa.CheckConstraint("ordinal >= 0", name=op.f("ck_chunk_ordinal")),
        sa.ForeignKeyConstraint(
            ["collection_id", "document_id"],
            [f"{s}.document.collection_id", f"{s}.document.id"],
            name=op.f("fk_chunk_collection_id_document_id_document"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "id", name=op.f("pk_chunk")),
        sa.UniqueConstraint(
            "collection_id",
            "document_id",
            "ordinal",
            name=op.f("uq_chunk_collection_id_document_id_ordinal"),
            deferrable=True,
        ),
        schema=s,
    )
    op.create_index("ix_chunk_tsv", "chunk", ["tsv"], unique=False, schema=s, postgresql_using="gin")
    op.create_index(
        "ix_chunk_collection_id_content_hash", "chunk", ["collection_id", "content_hash"], unique=False, schema=s
    )
    op.create_table(
        "embedding",
        sa.Column("collection_id", sa.BigInteger(), nullable=False),
        sa.Column("chunk_id", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("embedding", VECTOR(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id", "chunk_id"],
            [f"{s}.chunk.collection_id", f"{s}.chunk.id"],
            name=op.f("fk_embedding_collection_id_chunk_id_chunk"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "chunk_id", "model", name=op.f("pk_embedding")),
        schema=s,
        postgresql_partition_by="LIST (collection_id)",
    )
    op.create_table(
        "example",
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("split", sa.Text(), nullable=True),
        sa.Column("input", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("labels", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("source_collection_id", sa.BigInteger(), nullable=True),
        sa.Column("source_document_id", sa.BigInteger(), nullable=True),
        sa.Column("source_chunk_id", sa.BigInteger(), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("embedding", VECTOR(), nullable=True),
        sa.Column("input_ids", postgresql.ARRAY(sa.Integer()), nullable=True),
        sa.Column("attention_mask", postgresql.ARRAY(sa.Integer()), nullable=True),
        sa.Column("token_type_ids", postgresql.ARRAY(sa.Integer()), nullable=True),
        sa.Column("start_positions", postgresql.ARRAY(sa.Integer()), nullable=True),
        sa.Column("end_positions", postgresql.ARRAY(sa.Integer()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("jsonb_typeof(metadata) = 'object'", name=op.f("ck_example_metadata_object")),
        sa.CheckConstraint("split IN ('train', 'validation', 'test')", name=op.f("ck_example_split")),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            [f"{s}.dataset.id"],
            name=op.f("fk_example_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_collection_id", "source_chunk_id"],
            [f"{s}.chunk.collection_id", f"{s}.chunk.id"],
            name=op.f("fk_example_source_collection_id_source_chunk_id_chunk"),
            ondelete="SET NULL (source_chunk_id)",
        ),
        sa.ForeignKeyConstraint(
            ["source_collection_id", "source_document_id"],
            [f"{s}.document.collection_id", f"{s}.document.id"],
            name=op.f("fk_example_source_collection_id_source_document_id_document"),
            ondelete="SET NULL (source_document_id)",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "id", name=op.f("pk_example")),
        sa.UniqueConstraint("dataset_id", "content_hash", name=op.f("uq_example_dataset_id_content_hash")),
        schema=s,
    )
    op.create_index("ix_example_dataset_id_label", "example", ["dataset_id", "label"], unique=False, schema=s)
    op.create_index("ix_example_dataset_id_split_id", "example", ["dataset_id", "split", "id"], unique=False, schema=s)
    op.create_index("ix_example_labels", "example", ["labels"], unique=False, schema=s, postgresql_using="gin")
    op.create_index(
        "ix_example_source_chunk",
        "example",
        ["source_collection_id", "source_chunk_id"],
        unique=False,
        schema=s,
        postgresql_where=sa.text("source_chunk_id IS NOT NULL"),
    )
    op.create_index(
        "ix_example_source_document",
        "example",
        ["source_collection_id", "source_document_id"],
        unique=False,
        schema=s,
        postgresql_where=sa.text("source_document_id IS NOT NULL"),
    )


def downgrade() -> None:
    s = schema()
    for table in ("example", "embedding", "chunk", "document", "dataset", "collection"):
        op.drop_table(table, schema=s)  # drops their indexes and (embedding) partitions too
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM {qualified("meta")} WHERE key = 'created_extension_vector') THEN
                BEGIN
                    DROP EXTENSION vector;  -- RESTRICT: kept while anything outside Memora uses it
                EXCEPTION WHEN dependent_objects_still_exist THEN
                    RAISE NOTICE 'keeping extension vector: other objects in this database use it';
                END;
            END IF;
        END
        $$
        """
    )
    op.drop_table("meta", schema=s)
