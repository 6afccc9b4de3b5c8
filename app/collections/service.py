"""Creating, changing and removing collections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.collections import repository
from app.collections.schemas import CollectionCreate, CollectionOut, CollectionUpdate, Hnsw
from app.config import Settings
from app.db.models import MAX_INDEXED_DIMENSIONS, Collection, Dataset
from app.db.repository import add_named, get_named
from app.embeddings.base import Embedder
from app.embeddings.registry import check_model, default_model, get_embedder, max_chunk_tokens
from app.errors import InvalidInputError


def create(db: Session, data: CollectionCreate) -> Collection:
    provider = data.embedding_provider
    model, dimensions = model_and_dimensions(provider, data.embedding_model, data.dimensions)
    check_dimensions(dimensions, data.storage)
    check_chunk_size(provider, data.chunking.size)
    _check_language(db, data.language)
    collection = Collection(
        name=data.name,
        description=data.description,
        embedding_provider=provider,
        embedding_model=model,
        dimensions=dimensions,
        metric=data.metric,
        storage=data.storage,
        chunking=data.chunking.model_dump(),
        language=data.language,
        hnsw_m=data.hnsw.m,
        hnsw_ef_construction=data.hnsw.ef_construction,
        bm25_k1=data.bm25_k1,
        bm25_b=data.bm25_b,
        metadata_=data.metadata,
        feedback_dataset_id=feedback_dataset_id(db, data.feedback_dataset),
    )
    return add_named(db, collection, "uq_collection_name")


def get(db: Session, name: str, *, lock: bool = False, keep: bool = False) -> Collection:
    """Collection NAME, or a 404 (LOCK and KEEP: app/db/repository.get_named)."""
    return get_named(db, Collection, name, lock=lock, keep=keep)


def embedder(db: Session, settings: Settings, name: str) -> Embedder:
    """The embedder collection NAME's vectors come from, so queries land in the same space."""
    collection = get(db, name)
    return get_embedder(collection.embedding_provider, collection.embedding_model, collection.dimensions, settings)


# Fields whose change makes a new embedding version (app/versions/) rather than change the collection in place.
VERSION_FIELDS = ("embedding_provider", "embedding_model", "dimensions", "metric", "storage", "hnsw")


def update(db: Session, settings: Settings, name: str, patch: CollectionUpdate) -> Collection:
    """Change collection NAME. A new model, size, metric, storage or index makes a new embedding version, which the
    worker fills while searches go on reading the current one, and which becomes active once filled; new chunking
    re-chunks every document."""
    collection = get(db, name, lock=True)
    changes: dict[str, Any] = patch.model_dump(exclude_unset=True)

    if "language" in changes and changes["language"] != collection.language:
        _check_language(db, changes["language"])
        repository.set_chunk_language(db, collection.id, changes["language"])
        collection.language = changes["language"]
    for field in ("description", "bm25_k1", "bm25_b"):
        if changes.get(field) is not None:
            setattr(collection, field, changes[field])
    if changes.get("metadata") is not None:
        collection.metadata_ = changes["metadata"]
    if "feedback_dataset" in changes:
        collection.feedback_dataset_id = feedback_dataset_id(db, changes["feedback_dataset"])
    if patch.chunking is not None:
        check_chunk_size(changes.get("embedding_provider") or collection.embedding_provider, patch.chunking.size)
    rechunk = patch.chunking is not None and patch.chunking.model_dump() != collection.chunking
    if patch.chunking is not None:
        collection.chunking = patch.chunking.model_dump()
    db.flush()
    if changes.keys() & set(VERSION_FIELDS):
        _new_version(db, settings, collection, patch, changes)
    if rechunk:
        repository.requeue_documents(db, collection.id)
    db.refresh(collection)
    return collection


def _new_version(
    db: Session, settings: Settings, collection: Collection, patch: CollectionUpdate, changes: dict[str, Any]
) -> None:
    # Versions are built on collections, so their service is imported here rather than at the top.
    from app.versions import service as versions
    from app.versions.schemas import VersionCreate

    asked = {field: changes[field] for field in VERSION_FIELDS if changes.get(field) is not None}
    if "hnsw" in asked:
        asked["hnsw"] = patch.hnsw
    if "embedding_model" in changes and changes["embedding_model"] is None:  # null: the provider's default
        asked["embedding_model"] = default_model(changes.get("embedding_provider") or collection.embedding_provider)[0]
    versions.take_over(db, settings, collection, VersionCreate(**asked))


def delete(db: Session, name: str) -> None:
    db.delete(get(db, name, lock=True))
    db.flush()


def feedback_dataset_id(db: Session, name: str | None) -> int | None:
    """The id of dataset NAME, for a collection's feedback_dataset; a 422 naming the field if there is none."""
    if name is None:
        return None
    found = db.scalar(select(Dataset.id).where(Dataset.name == name))
    if found is None:
        raise InvalidInputError.for_field("feedback_dataset", f"no dataset named {name!r}")
    return found


def to_out(collection: Collection, documents: dict[str, int]) -> CollectionOut:
    return CollectionOut(
        name=collection.name,
        description=collection.description,
        embedding_provider=collection.embedding_provider,
        embedding_model=collection.embedding_model,
        dimensions=collection.dimensions,
        metric=collection.metric,
        storage=collection.storage,
        chunking=collection.chunking,
        language=collection.language,
        hnsw=Hnsw(m=collection.hnsw_m, ef_construction=collection.hnsw_ef_construction),
        bm25_k1=collection.bm25_k1,
        bm25_b=collection.bm25_b,
        metadata=collection.metadata_,
        active_version=collection.active_version,
        feedback_dataset=collection.feedback_dataset.name if collection.feedback_dataset else None,
        documents=documents,
        created_at=collection.created_at,
        updated_at=collection.updated_at,
    )


def describe(db: Session, collections: Sequence[Collection]) -> list[CollectionOut]:
    counts = repository.status_counts(db, [c.id for c in collections])
    return [to_out(c, counts[c.id]) for c in collections]


def model_and_dimensions(provider: str, model: str | None, dimensions: int | None) -> tuple[str, int]:
    default_name, default_dimensions = default_model(provider)
    model = model or default_name
    dimensions = dimensions or (default_dimensions if model == default_name else None)
    if dimensions is None:
        raise InvalidInputError.for_field("dimensions", f"required for model {model!r} of provider {provider!r}")
    check_model(provider, model, dimensions)
    return model, dimensions


def check_dimensions(dimensions: int, storage: str) -> None:
    limit = MAX_INDEXED_DIMENSIONS[storage]
    if dimensions > limit:
        raise InvalidInputError.for_field(
            "dimensions",
            f"HNSW indexes at most {limit} dimensions of {storage}; use storage 'halfvec' (up to 4000) "
            "or a model with fewer dimensions",
        )


def check_chunk_size(provider: str, size: int) -> None:
    most = max_chunk_tokens(provider)
    if size > most:
        raise InvalidInputError.for_field(
            "chunking.size",
            f"at most {most} tokens for the {provider} provider, whose model reads no more than "
            f"{most} tokens of chunk text beside its title; the rest would be cut from the vector",
        )


def _check_language(db: Session, language: str) -> None:
    if not repository.text_search_config_exists(db, language):
        raise InvalidInputError.for_field(
            "language", f"{language!r} is not a text search configuration of this PostgreSQL (see \\dF in psql)"
        )
