"""The tables of training data: datasets, their examples, snapshots, and fine-tuning jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    FetchedValue,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import DateTime

from app.db.models.base import EXAMPLE_FORMATS, TASKS, Base, created_at_column, in_list, metadata_column
from app.db.models.collections import Chunk, Document


class Dataset(Base):
    """A named set of labeled training examples for one task, with the rule that splits it (docs/training.md)."""

    __tablename__ = "dataset"
    __table_args__ = (
        CheckConstraint(r"name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'", name="name_format"),
        CheckConstraint(in_list("task", TASKS), name="task"),
        CheckConstraint("jsonb_typeof(split_ratios) = 'object'", name="split_ratios_object"),
        CheckConstraint("next_seq >= 0", name="next_seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    task: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    metadata_: Mapped[dict[str, Any]] = metadata_column()
    # The split rule: an example's split is a function of its text_hash, this seed and these ratios
    # (memora.split_of), so re-running gives the same split and new examples join the split their hash says.
    split_seed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    split_ratios: Mapped[dict[str, float]] = mapped_column(
        JSONB, nullable=False, server_default=text("""'{"train": 0.8, "validation": 0.1, "test": 0.1}'::jsonb""")
    )
    split_stratified: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    # The next example's seq: examples are numbered densely per dataset for keyset paging and shuffling.
    next_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


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
        CheckConstraint(in_list("format", EXAMPLE_FORMATS), name="format"),
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
    metadata_: Mapped[dict[str, Any]] = metadata_column()
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
    created_at: Mapped[datetime] = created_at_column()
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
    created_at: Mapped[datetime] = created_at_column()


class SnapshotExample(Base):
    """One example of a snapshot: seq is dense (0..examples-1) within the snapshot; rows never change."""

    __tablename__ = "snapshot_example"
    __table_args__ = (
        # RESTRICT: an example a snapshot holds is tombstoned, never deleted (app/training/datasets/service.py).
        ForeignKeyConstraint(["dataset_id", "example_id"], [Example.dataset_id, Example.id], ondelete="RESTRICT"),
        Index("ix_snapshot_example_snapshot_id_split_seq", "snapshot_id", "split", "seq"),
        Index("ix_snapshot_example_snapshot_id_seq", "snapshot_id", "seq"),
        Index("ix_snapshot_example_dataset_id_example_id", "dataset_id", "example_id"),
        CheckConstraint("split IN ('train', 'validation', 'test')", name="split"),
    )

    # The key leads with dataset_id, the distribution column under Citus (migration 0012).
    dataset_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(Snapshot.id, ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
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
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()
