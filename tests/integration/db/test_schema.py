"""The schema's own guarantees: per-collection vector storage, constraints, cascades and maintained columns."""

from __future__ import annotations

import hashlib
import math

import pytest
from sqlalchemy import Connection, delete, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from app.db.models import Chunk, Collection, Document, Embedding, Example
from tests.factories import (
    make_chunk,
    make_collection,
    make_dataset,
    make_document,
    make_embedding,
    make_example,
)
from tests.schema import SCHEMA, q, sql


def _index_def(connection: Connection, collection_id: int) -> str | None:
    return connection.execute(
        text("SELECT indexdef FROM pg_indexes WHERE schemaname = :schema AND indexname = :name"),
        {"schema": SCHEMA, "name": f"embedding_c{collection_id}_v1_hnsw"},
    ).scalar()


@pytest.mark.parametrize(
    ("metric", "storage", "opclass"),
    [
        ("cosine", "vector", "vector_cosine_ops"),
        ("l2", "vector", "vector_l2_ops"),
        ("inner_product", "vector", "vector_ip_ops"),
        ("cosine", "halfvec", "halfvec_cosine_ops"),
        ("l2", "halfvec", "halfvec_l2_ops"),
        ("inner_product", "halfvec", "halfvec_ip_ops"),
    ],
)
def test_collection_gets_hnsw_index_matching_metric_and_storage(
    db: Session, connection: Connection, metric: str, storage: str, opclass: str
) -> None:
    collection = make_collection(
        db, metric=metric, storage=storage, dimensions=384, hnsw_m=24, hnsw_ef_construction=100
    )

    indexdef = _index_def(connection, collection.id)

    assert indexdef is not None
    assert f"USING hnsw (((embedding)::{storage}(384)) {opclass})" in indexdef
    assert "m='24'" in indexdef
    assert "ef_construction='100'" in indexdef


def test_hnsw_index_serves_nearest_neighbour_queries(db: Session, connection: Connection) -> None:
    collection = make_collection(db, dimensions=3)
    document = make_document(db, collection)
    for ordinal, vector in enumerate([[1, 0, 0], [0, 1, 0], [0, 0, 1]]):
        chunk = make_chunk(db, document, ordinal=ordinal, text=f"chunk {ordinal}")
        make_embedding(db, chunk, vector)
    connection.execute(text("SET LOCAL enable_seqscan = off"))
    query = sql(
        f"SELECT chunk_id FROM memora.embedding_c{collection.id} "
        "ORDER BY embedding::vector(3) <=> '[0, 0.9, 0.1]' LIMIT 1"
    )

    plan = "\n".join(row[0] for row in connection.execute(text("EXPLAIN " + str(query))))
    nearest = connection.execute(query).scalar()

    assert f"embedding_c{collection.id}_v1_hnsw" in plan
    chunk_ids = db.scalars(select(Chunk.id).where(Chunk.document_id == document.id).order_by(Chunk.ordinal)).all()
    assert nearest == chunk_ids[1]


NEAREST_VECTORS = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.5, 0.5], [3.0, 3.0, 0.0]]
QUERY_VECTOR = [0.1, 1.0, 0.2]


def _distances(metric: str) -> list[float]:
    """pgvector's distances of NEAREST_VECTORS to QUERY_VECTOR, computed here: cosine, l2, negative inner product."""
    norm = math.sqrt(sum(x * x for x in QUERY_VECTOR))
    distances = []
    for vector in NEAREST_VECTORS:
        dot = sum(a * b for a, b in zip(vector, QUERY_VECTOR, strict=True))
        if metric == "cosine":
            distances.append(1 - dot / (norm * math.sqrt(sum(x * x for x in vector))))
        elif metric == "l2":
            distances.append(math.dist(vector, QUERY_VECTOR))
        else:
            distances.append(-dot)
    return distances


def _small_collection(db: Session, **overrides: object) -> tuple[Collection, list[int]]:
    """A collection whose chunks hold NEAREST_VECTORS, and those chunks' ids in that order."""
    collection = make_collection(db, **overrides)
    document = make_document(db, collection)
    chunk_ids = []
    for ordinal, vector in enumerate(NEAREST_VECTORS):
        chunk = make_chunk(db, document, ordinal=ordinal, text=f"chunk {ordinal}")
        make_embedding(db, chunk, vector)
        chunk_ids.append(chunk.id)
    return collection, chunk_ids


def _index_scans(connection: Connection, collection_id: int) -> int:
    """Scans of the collection's HNSW index in this transaction."""
    scans: int = connection.execute(
        text("SELECT pg_stat_get_xact_numscans(to_regclass(:index))"),
        {"index": q(f"memora.embedding_c{collection_id}_v1_hnsw")},
    ).scalar_one()
    return scans


def _nearest(connection: Connection, collection_id: int) -> tuple[list[int], list[float], list[int], int]:
    """Chunk ids, distances and ranks from the collection's nearest function, and the HNSW index scans it made."""
    rows = connection.execute(
        sql(f"SELECT * FROM memora.embedding_c{collection_id}_v1_nearest(CAST(:query AS vector), 10)"),
        {"query": str(QUERY_VECTOR)},
    ).all()
    return (
        [row[0] for row in rows],
        [row[1] for row in rows],
        [row[2] for row in rows],
        _index_scans(connection, collection_id),
    )


@pytest.mark.parametrize(("metric", "storage"), [("cosine", "vector"), ("l2", "halfvec"), ("inner_product", "vector")])
def test_nearest_function_walks_the_index_of_a_small_collection_with_its_metric(
    db: Session, connection: Connection, metric: str, storage: str
) -> None:
    collection, chunk_ids = _small_collection(db, metric=metric, storage=storage)
    connection.execute(sql(f"ANALYZE memora.embedding_c{collection.id}"))

    ids, distances, ranks, scans = _nearest(connection, collection.id)

    # Four vectors: the planner alone would read them all and sort (pgvector's cost estimate), not walk the index.
    assert scans == 1
    expected = sorted(zip(_distances(metric), chunk_ids, strict=True))
    assert ids == [chunk_id for _, chunk_id in expected]
    assert distances == pytest.approx([distance for distance, _ in expected], abs=1e-3)
    assert ranks == [1, 2, 3, 4]


def test_vector_search_goes_through_the_nearest_function_up_to_100_rows(db: Session, connection: Connection) -> None:
    collection, _ = _small_collection(db)
    connection.execute(sql(f"ANALYZE memora.embedding_c{collection.id}"))
    search = sql("SELECT chunk_id FROM memora.search_vector(:name, CAST(:query AS vector), :k)")

    shallow = connection.execute(search, {"name": collection.name, "query": str(QUERY_VECTOR), "k": 4}).scalars().all()
    after_shallow = _index_scans(connection, collection.id)
    deep = connection.execute(search, {"name": collection.name, "query": str(QUERY_VECTOR), "k": 101}).scalars().all()

    # 4 rows: the collection's function, which walks the index; 101: planned per call, and the planner reads the
    # four vectors exactly. The same neighbours either way.
    assert after_shallow == 1
    assert _index_scans(connection, collection.id) == 1
    assert shallow == deep


def test_changing_the_metric_makes_the_nearest_function_again(db: Session, connection: Connection) -> None:
    collection, _ = _small_collection(db)
    _, cosine, _, _ = _nearest(connection, collection.id)

    db.execute(update(Collection).where(Collection.id == collection.id).values(metric="l2"))

    _, l2, _, _ = _nearest(connection, collection.id)
    assert cosine == pytest.approx(sorted(_distances("cosine")), abs=1e-6)
    assert l2 == pytest.approx(sorted(_distances("l2")), abs=1e-6)


def test_partition_refuses_vectors_of_other_dimensions(db: Session) -> None:
    chunk = make_chunk(db, make_document(db, make_collection(db, dimensions=3)))

    with pytest.raises(DBAPIError, match="dimensions"):
        make_embedding(db, chunk, [1.0, 2.0])


def test_partition_refuses_vectors_of_other_models(db: Session) -> None:
    chunk = make_chunk(db, make_document(db, make_collection(db, embedding_model="model-a")))

    with pytest.raises(IntegrityError, match="_model"):
        make_embedding(db, chunk, [1.0, 2.0, 3.0], model="model-b")


def test_changing_index_settings_rebuilds_the_index(db: Session, connection: Connection) -> None:
    collection = make_collection(db, dimensions=8)

    db.execute(update(Collection).where(Collection.id == collection.id).values(metric="l2", hnsw_m=8))

    indexdef = _index_def(connection, collection.id)
    assert indexdef is not None
    assert "vector_l2_ops" in indexdef
    assert "m='8'" in indexdef


def test_changing_dimensions_is_refused_while_vectors_of_the_old_size_exist(db: Session) -> None:
    collection = make_collection(db, dimensions=3)
    make_embedding(db, make_chunk(db, make_document(db, collection)), [1.0, 0.0, 0.0])

    with pytest.raises(DBAPIError):
        db.execute(update(Collection).where(Collection.id == collection.id).values(dimensions=4))


def test_deleting_a_collection_drops_its_partition_and_cascades(db: Session, connection: Connection) -> None:
    collection = make_collection(db)
    document = make_document(db, collection)
    make_embedding(db, make_chunk(db, document), [1.0, 0.0, 0.0])
    other = make_collection(db)
    other_chunk = make_chunk(db, make_document(db, other))
    make_embedding(db, other_chunk, [0.0, 1.0, 0.0])

    db.execute(delete(Collection).where(Collection.id == collection.id))

    partition = connection.execute(text("SELECT to_regclass(:n)"), {"n": q(f"memora.embedding_c{collection.id}")})
    assert partition.scalar() is None
    function = q(f"memora.embedding_c{collection.id}_v1_nearest")
    nearest = connection.execute(text("SELECT to_regproc(:n)"), {"n": function})
    assert nearest.scalar() is None
    assert db.scalar(select(Document.id).where(Document.collection_id == collection.id)) is None
    assert db.scalar(select(Chunk.id).where(Chunk.collection_id == collection.id)) is None
    assert db.scalar(select(Embedding.chunk_id).where(Embedding.collection_id == other.id)) == other_chunk.id


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("metric", "manhattan"),
        ("storage", "bitvec"),
        ("dimensions", 0),
        ("dimensions", 2001),
        ("hnsw_m", 1),
        ("hnsw_ef_construction", 10),  # below 2 * m
        ("name", "has space"),
    ],
)
def test_collection_constraints(db: Session, column: str, value: object) -> None:
    with pytest.raises(IntegrityError, match=f"ck_collection_{column}"):
        make_collection(db, **{column: value})


def test_halfvec_allows_more_dimensions_than_vector(db: Session) -> None:
    collection = make_collection(db, storage="halfvec", dimensions=3072)

    assert collection.dimensions == 3072


def test_document_trigger_keeps_hash_version_and_updated_at(db: Session) -> None:
    document = make_document(db, make_collection(db), content="Hello, wörld")
    assert document.content_hash == hashlib.sha256("Hello, wörld".encode()).digest()
    assert document.version == 1

    db.execute(update(Document).where(Document.id == document.id).values(metadata_={"seen": True}))
    db.refresh(document)
    assert document.version == 1

    db.execute(update(Document).where(Document.id == document.id).values(content="Hello again"))
    db.refresh(document)
    assert document.content_hash == hashlib.sha256(b"Hello again").digest()
    assert document.version == 2


def test_external_id_is_unique_per_collection(db: Session) -> None:
    first, second = make_collection(db), make_collection(db)
    make_document(db, first, external_id="same")
    make_document(db, second, external_id="same")

    with pytest.raises(IntegrityError, match="uq_document_collection_id_external_id"):
        make_document(db, first, external_id="same")


def test_chunk_tsvector_weights_title_above_body(db: Session, connection: Connection) -> None:
    document = make_document(db, make_collection(db), title="Aspirin", content="Headache relief with tablets.")
    chunk = make_chunk(db, document)

    tsv = connection.execute(sql("SELECT tsv::text FROM memora.chunk WHERE id = :id"), {"id": chunk.id}).scalar()

    assert "'aspirin':1A" in tsv
    assert "'headach':" in tsv  # English stemming from the chunk's language
    assert "'with'" not in tsv  # English stop word


def test_chunk_span_must_be_ordered(db: Session) -> None:
    document = make_document(db, make_collection(db))

    with pytest.raises(IntegrityError, match="ck_chunk_char_span"):
        make_chunk(db, document, char_start=5, char_end=2)


def test_example_content_hash_is_unique_per_dataset(db: Session) -> None:
    dataset = make_dataset(db)
    make_example(db, dataset, content_hash=b"x" * 32)
    make_example(db, make_dataset(db), content_hash=b"x" * 32)

    with pytest.raises(IntegrityError, match="uq_example_dataset_id_content_hash"):
        make_example(db, dataset, content_hash=b"x" * 32)


def test_example_stores_tokenized_arrays_and_labels(db: Session) -> None:
    example = make_example(
        db,
        make_dataset(db, task="qa"),
        input_ids=[101, 2054, 102],
        attention_mask=[1, 1, 1],
        start_positions=[1],
        end_positions=[2],
        labels=["a", "b"],
    )

    assert example.input_ids == [101, 2054, 102]
    assert example.labels == ["a", "b"]


def test_example_source_links_are_cleared_when_the_source_goes(db: Session) -> None:
    collection = make_collection(db)
    document = make_document(db, collection)
    chunk = make_chunk(db, document)
    example = make_example(
        db,
        make_dataset(db),
        source_collection_id=collection.id,
        source_document_id=document.id,
        source_chunk_id=chunk.id,
    )

    db.execute(delete(Chunk).where(Chunk.id == chunk.id))
    db.refresh(example)
    assert (example.source_document_id, example.source_chunk_id) == (document.id, None)

    db.execute(delete(Document).where(Document.id == document.id))
    db.refresh(example)
    assert example.source_document_id is None
    assert example.source_collection_id == collection.id


def test_deleting_a_dataset_deletes_its_examples(db: Session) -> None:
    dataset = make_dataset(db)
    example = make_example(db, dataset)

    db.delete(dataset)
    db.flush()

    assert db.scalar(select(Example.id).where(Example.id == example.id)) is None


def test_every_table_carries_its_distribution_column(connection: Connection) -> None:
    rows = connection.execute(
        text(
            "SELECT c.relname, array_agg(a.attname::text) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND a.attnum > 0 GROUP BY c.relname"
        ),
        {"schema": SCHEMA},
    ).all()
    # Tables of the installation rather than of one collection or dataset (reference tables under Citus).
    roots = {"collection", "dataset", "meta", "alembic_version", "api_key", "audit_event"}

    tables = dict(rows)
    assert set(tables) >= {"document", "chunk", "embedding", "example"}
    for name, columns in tables.items():
        if name not in roots:
            assert {"collection_id", "dataset_id"} & set(columns), name
