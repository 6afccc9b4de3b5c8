"""Versions of a collection's vectors: list, add, make active, drop.

A new version is filled by the worker in the background (app/versions/backfill.py) while searches read the active
one. Making a version active is one row's change, under a lock that waits for the worker's writes in progress
(app/ingest/worker.py takes the collection's row FOR SHARE when it writes vectors), so every chunk written before it
is counted, and every chunk written after it gets the new version's vector.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.collections import service as collections
from app.collections.schemas import Hnsw
from app.config import Settings
from app.db.models import Chunk, Collection, Embedding, EmbeddingVersion, version_table
from app.db.query import Query, schema_of
from app.embeddings.registry import check_model
from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.upstream import api_key
from app.versions.schemas import VersionCreate, VersionOut

_BYTES = Query("SELECT coalesce(pg_total_relation_size(to_regclass(%(table)s)), 0)")
# The backfill writes a version's table, then its row; taking the table first, a drop waits for it rather than
# deadlock with it.
_LOCK_TABLE = Query("LOCK TABLE memora.{table} IN ACCESS EXCLUSIVE MODE")
_CHUNKS = Query("SELECT coalesce((SELECT chunks FROM memora.text_stats WHERE collection_id = %(c)s), 0)")
# Chunks of the collection without a vector in the version.
_MISSING = Query("""
SELECT count(*) FROM memora.chunk ch
WHERE ch.collection_id = %(c)s
  AND NOT EXISTS (SELECT FROM memora.embedding e
                  WHERE e.collection_id = %(c)s AND e.chunk_id = ch.id AND e.version = %(v)s)
""")


def versions(db: Session, name: str) -> list[VersionOut]:
    """Every version of collection NAME, oldest first, with how far each is filled and what it takes on disk."""
    collection = collections.get(db, name)
    of_collection = EmbeddingVersion.collection_id == collection.id
    rows = db.scalars(select(EmbeddingVersion).where(of_collection).order_by(EmbeddingVersion.number)).all()
    return [_out(db, collection, row) for row in rows]


def version(db: Session, name: str, number: int) -> VersionOut:
    collection = collections.get(db, name)
    return _out(db, collection, _get(db, collection, number))


def create(db: Session, settings: Settings, name: str, data: VersionCreate) -> VersionOut:
    """Add a version with the next number; the worker fills it. Nothing is written if its settings cannot work."""
    collection = collections.get(db, name, lock=True)  # numbers are taken one at a time
    provider = data.embedding_provider or collection.embedding_provider
    same_provider = provider == collection.embedding_provider
    model_given = data.embedding_model or (collection.embedding_model if same_provider else None)
    if data.dimensions is None and model_given == collection.embedding_model and same_provider:
        dimensions: int | None = collection.dimensions
    else:
        dimensions = data.dimensions
    model, dimensions = collections.model_and_dimensions(provider, model_given, dimensions)
    check_model(provider, model, dimensions, settings)  # a local model this server cannot load, among others
    storage = data.storage or collection.storage
    collections.check_dimensions(dimensions, storage)
    collections.check_chunk_size(provider, int(collection.chunking.get("size", 0)))
    if provider == "openai":
        api_key(settings, "the openai provider", _MissingKey)
    hnsw = data.hnsw or Hnsw(m=collection.hnsw_m, ef_construction=collection.hnsw_ef_construction)
    number = (
        db.scalar(select(func.max(EmbeddingVersion.number)).where(EmbeddingVersion.collection_id == collection.id)) or 0
    ) + 1
    has_chunks = db.scalar(select(Chunk.id).where(Chunk.collection_id == collection.id).limit(1)) is not None
    row = EmbeddingVersion(
        collection_id=collection.id,
        number=number,
        embedding_provider=provider,
        embedding_model=model,
        dimensions=dimensions,
        metric=data.metric or collection.metric,
        storage=storage,
        hnsw_m=hnsw.m,
        hnsw_ef_construction=hnsw.ef_construction,
        status="building" if has_chunks else "ready",
    )
    db.add(row)
    db.flush()
    db.refresh(row)
    return _out(db, collection, row)


def activate(db: Session, name: str, number: int, *, force: bool = False) -> VersionOut:
    """Make version NUMBER the one searches read: refused (409) while chunks lack its vectors, unless FORCE."""
    collection = collections.get(db, name, lock=True)  # waits for the worker's writes in progress
    row = _get(db, collection, number)
    if not force:
        if row.status == "failed":
            raise ConflictError(f"version {number} failed: {row.error}; fix it, or force")
        missing = int(_MISSING.run(db, {"c": collection.id, "v": number}).scalar_one())
        if missing:
            raise ConflictError(
                f"version {number} lacks the vectors of {missing} chunk(s); wait for the worker to fill it, or force"
            )
    if collection.active_version != number:
        collection.active_version = number
        db.flush()
    db.refresh(collection)
    db.refresh(row)
    return _out(db, collection, row)


def drop(db: Session, name: str, number: int) -> None:
    """Drop version NUMBER with its vectors and index (not the active one)."""
    collection = collections.get(db, name, lock=True)
    _get(db, collection, number)
    if number == collection.active_version:
        raise ConflictError(f"version {number} is the active one; make another active first")
    _LOCK_TABLE.run(db, table=version_table(collection.id, number))
    db.execute(delete(EmbeddingVersion).where(EmbeddingVersion.collection_id == collection.id,
                                              EmbeddingVersion.number == number))  # fmt: skip
    db.flush()


def retry(db: Session, name: str, number: int) -> VersionOut:
    """Set a failed version building again (its model's key or settings fixed), from where it stopped."""
    collection = collections.get(db, name)
    row = _get(db, collection, number, lock=True)
    if row.status == "failed":
        row.status, row.error, row.leased_by, row.lease_until = "building", None, None, None
        db.flush()
    return _out(db, collection, row)


class _MissingKey(InvalidInputError):
    """The provider of a new version has no key: the embedding_provider field is what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(f"embedding_provider: {message}", details=[{"field": "embedding_provider", "reason": message}])


def _get(db: Session, collection: Collection, number: int, *, lock: bool = False) -> EmbeddingVersion:
    row = db.get(EmbeddingVersion, (collection.id, number), with_for_update=lock or None)
    if row is None:
        raise NotFoundError(f"collection {collection.name!r} has no embedding version {number}")
    return row


def _out(db: Session, collection: Collection, row: EmbeddingVersion) -> VersionOut:
    vectors = db.scalar(
        select(func.count()).where(Embedding.collection_id == collection.id, Embedding.version == row.number)
    )
    chunks = _CHUNKS.run(db, {"c": collection.id}).scalar_one()  # kept by triggers: no count over the chunks
    table = version_table(collection.id, row.number)  # schema and name are plain identifiers: no quoting needed
    return VersionOut(
        number=row.number,
        active=row.number == collection.active_version,
        status=row.status,
        error=row.error,
        embedding_provider=row.embedding_provider,
        embedding_model=row.embedding_model,
        dimensions=row.dimensions,
        metric=row.metric,
        storage=row.storage,
        hnsw=Hnsw(m=row.hnsw_m, ef_construction=row.hnsw_ef_construction),
        vectors=vectors or 0,
        chunks=chunks or 0,
        bytes=int(_BYTES.run(db, {"table": f"{schema_of(db.connection())}.{table}"}).scalar_one()),
        created_at=row.created_at,
    )
