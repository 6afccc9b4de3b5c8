"""Versions of a collection's vectors: list, add, make active, drop.

A new version is filled by the worker in the background (app/versions/backfill.py) while searches read the active
one. Making a version active is one row's change, under a lock that waits for the worker's writes in progress
(app/ingest/worker.py takes the collection's row FOR SHARE when it writes vectors), so every chunk written before it
is counted, and every chunk written after it gets the new version's vector.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.collections import service as collections
from app.collections.schemas import Hnsw
from app.config import Settings
from app.db.models import Chunk, Collection, Embedding, EmbeddingVersion, embedding_partition, version_table
from app.db.query import Query, schema_of
from app.embeddings.base import Embedder
from app.embeddings.registry import check_model, get_embedder
from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.upstream import api_key
from app.versions.schemas import TrainRequest, VersionCreate, VersionOut, VersionUpdate

_BYTES = Query("SELECT coalesce(pg_total_relation_size(to_regclass(%(table)s)), 0)")
# Dropping a version's table locks its parent, the collection's partition, which every reader and writer of the
# version's table (the backfill, the worker's COPY, a chunk delete's cascade) locks before it: so a drop takes the
# parent first (ONLY: not the active version's table, which searches read), then the table, then the version's row
# (the backfill writes the table before the row), and waits for them rather than deadlock with them.
_LOCK_TABLES = Query("LOCK TABLE ONLY memora.{parent}, memora.{table} IN ACCESS EXCLUSIVE MODE")
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
    row = add(db, collection, _settings(collection, data, settings), source=data.source)
    return _out(db, collection, row)


def take_over(db: Session, settings: Settings, collection: Collection, data: VersionCreate) -> EmbeddingVersion | None:
    """A version with DATA's settings that becomes the active one as soon as the worker has filled it (at once for a
    collection without chunks): what changing a collection's model does. None if DATA changes nothing; a version
    made so before and not yet active no longer takes over. COLLECTION is locked by the caller."""
    fields = _settings(collection, data, settings)
    if all(getattr(collection, name) == value for name, value in fields.items()):
        return None
    db.execute(update(EmbeddingVersion).where(EmbeddingVersion.collection_id == collection.id)
               .values(activate_when_ready=False))  # fmt: skip
    row = add(db, collection, fields, source="worker", activate_when_ready=True)
    if row.status == "ready":
        collection.active_version = row.number
        db.flush()
        db.refresh(collection)
    return row


def _settings(collection: Collection, data: VersionCreate, settings: Settings) -> dict[str, Any]:
    """The columns of a version with DATA's settings, the collection's active ones where DATA leaves one out; a 422
    naming the field for settings that cannot work."""
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
    return {
        "embedding_provider": provider,
        "embedding_model": model,
        "dimensions": dimensions,
        "metric": data.metric or collection.metric,
        "storage": storage,
        "hnsw_m": hnsw.m,
        "hnsw_ef_construction": hnsw.ef_construction,
    }


SETTINGS = (
    "embedding_provider", "embedding_model", "dimensions", "metric", "storage", "hnsw_m", "hnsw_ef_construction"
)  # fmt: skip


def settings_of(row: EmbeddingVersion) -> dict[str, Any]:
    """The settings of version ROW, as add takes them."""
    return {name: getattr(row, name) for name in SETTINGS}


def add(db: Session, collection: Collection, fields: dict[str, Any], **extra: Any) -> EmbeddingVersion:
    """A new version of COLLECTION (locked) with the next number: building, or ready if there is nothing to fill
    (unless EXTRA gives its status)."""
    number = (
        db.scalar(select(func.max(EmbeddingVersion.number)).where(EmbeddingVersion.collection_id == collection.id)) or 0
    ) + 1
    has_chunks = db.scalar(select(Chunk.id).where(Chunk.collection_id == collection.id).limit(1)) is not None
    status = extra.pop("status", "building" if has_chunks else "ready")
    row = EmbeddingVersion(collection_id=collection.id, number=number, status=status, **fields, **extra)
    db.add(row)
    db.flush()
    db.refresh(row)
    return row


def embedder(db: Session, settings: Settings, name: str, number: int | None) -> Embedder:
    """The embedder of version NUMBER of collection NAME (the active one if None): its queries' model."""
    collection = collections.get(db, name)
    if number is None or number == collection.active_version:
        return collections.embedder(db, settings, name)
    row = _get(db, collection, number)
    return get_embedder(row.embedding_provider, row.embedding_model, row.dimensions, settings)


def request_training(db: Session, name: str, request: TrainRequest) -> VersionOut:
    """A version in status 'training' for the worker to train (app/adapters/jobs.py), once the request is checked:
    the dataset, enough judged pairs for both held-out splits, documents the collection has, a base to adapt."""
    from app.adapters import data  # adapters build on versions
    from app.adapters import service as adapters
    from app.eval.datasets import dataset_queries

    collection = collections.get(db, name, lock=True)
    base = adapters.base_version(db, collection, request.base)
    try:
        queries = dataset_queries(db, request.pairs)
    except (NotFoundError, InvalidInputError) as exc:
        raise InvalidInputError.for_field("pairs", exc.message) from None
    data.check(queries)
    data.check_known(db.connection(), collection.id, queries)
    adapters.check_splits(queries, request.seed)
    adapter = {"base": base.number, "request": request.model_dump(exclude={"base"})}
    row = add(db, collection, settings_of(base), adapter=adapter, status="training")
    return _out(db, collection, row)


def activate(db: Session, name: str, number: int, *, force: bool = False) -> VersionOut:
    """Make version NUMBER the one searches read: refused (409) while chunks lack its vectors, unless FORCE."""
    collection = collections.get(db, name, lock=True)  # waits for the worker's writes in progress
    # Ready is a promise once the row is ours: new chunks set a version building in the transaction that adds them (a
    # trigger, which locks the row), and that transaction has ended. So only a version not ready is counted.
    row = _get(db, collection, number, lock=True)
    if not force and row.status != "ready":
        if row.status == "failed":
            raise ConflictError(f"version {number} failed: {row.error}; fix it, or force")
        missing = int(_MISSING.run(db, {"c": collection.id, "v": number}).scalar_one())
        if missing:
            raise ConflictError(
                f"version {number} lacks the vectors of {missing} chunk(s); wait for the worker to fill it, or force"
            )
    # A version chosen by hand is the one: none made by an earlier PATCH of the model takes over from it later.
    db.execute(update(EmbeddingVersion).where(EmbeddingVersion.collection_id == collection.id)
               .values(activate_when_ready=False))  # fmt: skip
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
    _LOCK_TABLES.run(db, parent=embedding_partition(collection.id), table=version_table(collection.id, number))
    db.execute(delete(EmbeddingVersion).where(EmbeddingVersion.collection_id == collection.id,
                                              EmbeddingVersion.number == number))  # fmt: skip
    db.flush()


def retry(db: Session, name: str, number: int) -> VersionOut:
    """Set a failed version building again (its model's key or settings fixed), from where it stopped."""
    return update_version(db, name, number, VersionUpdate(status="building"))


def update_version(db: Session, name: str, number: int, data: VersionUpdate) -> VersionOut:
    """Set a failed version building again (status), or hand a version to the worker or to imports (source)."""
    collection = collections.get(db, name)
    row = _get(db, collection, number, lock=True)
    if data.status == "building" and row.status == "failed":
        row.status, row.error, row.leased_by, row.lease_until = "building", None, None, None
    if data.source is not None and data.source != row.source:
        row.source = data.source
        if data.source == "worker" and row.status == "building":
            row.backfill_after = 0  # from the first chunk: an import may have left gaps anywhere
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
        source=row.source,
        activate_when_ready=row.activate_when_ready,
        adapter=row.adapter,
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
