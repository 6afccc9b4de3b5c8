"""What every table of the data model shares: the declarative base in Memora's schema, the naming convention of
constraints, the value lists behind CHECK constraints, and column helpers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    MetaData,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
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
VERSION_STATUSES = ("training", "building", "ready", "failed")
VERSION_SOURCES = ("worker", "import")
TASKS = ("chat", "completion", "classification", "pairs", "triplets", "qa", "custom")
# The shapes an example can have (app/training/formats/records.py); a dataset of any task may mix them.
EXAMPLE_FORMATS = TASKS
# HNSW indexes at most 2,000 dimensions of vector and 4,000 of halfvec (pgvector).
MAX_INDEXED_DIMENSIONS = {"vector": 2000, "halfvec": 4000}


def embedding_partition(collection_id: int) -> str:
    """Name of a collection's partition of embedding (memora.embedding_partition in SQL)."""
    return f"embedding_c{collection_id}"


def version_table(collection_id: int, version: int) -> str:
    """Name of the table of one version of a collection's vectors (memora.version_table in SQL)."""
    return f"{embedding_partition(collection_id)}_v{version}"


def in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)


def created_at_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def metadata_column() -> Mapped[dict[str, Any]]:
    # `metadata` is taken on declarative classes, so the attribute is metadata_ and the column metadata.
    return mapped_column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb"))


class Meta(Base):
    """Facts about this installation that migrations need later (e.g. whether they created `vector`)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)
