"""Versions of a collection's vectors (migration 0009, sql/idempotent/014-embedding-versions.sql): a table and an
HNSW index per version, one version active for search, the collection's model columns being the active version's."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, delete, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from app.db.models import Chunk, Collection, Embedding, EmbeddingVersion
from tests.factories import make_chunk, make_collection, make_document, make_embedding
from tests.schema import SCHEMA, q, sql

VECTORS_3D = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
# The same chunks in a 2-d space of another model, where the nearest chunk to QUERY_2D is the third, not the first.
VECTORS_2D = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]
QUERY_3D = [0.9, 0.1, 0.0]
QUERY_2D = [0.1, 1.0]


def _regclass(connection: Connection, name: str) -> str | None:
    found: str | None = connection.execute(text("SELECT to_regclass(:n)::text"), {"n": q(f"memora.{name}")}).scalar()
    return found


def _indexdef(connection: Connection, name: str) -> str | None:
    found: str | None = connection.execute(
        text("SELECT indexdef FROM pg_indexes WHERE schemaname = :schema AND indexname = :name"),
        {"schema": SCHEMA, "name": name},
    ).scalar()
    return found


def _add_version(db: Session, collection: Collection, number: int, **settings: object) -> EmbeddingVersion:
    values: dict[str, object] = {
        "embedding_provider": collection.embedding_provider,
        "embedding_model": collection.embedding_model,
        "dimensions": collection.dimensions,
        "metric": collection.metric,
        "storage": collection.storage,
        "hnsw_m": collection.hnsw_m,
        "hnsw_ef_construction": collection.hnsw_ef_construction,
    }
    version = EmbeddingVersion(collection_id=collection.id, number=number, **(values | settings))
    db.add(version)
    db.flush()
    return version


def _two_versions(db: Session) -> tuple[Collection, list[int]]:
    """A collection whose three chunks have 3-d vectors of test-model in version 1 (active) and 2-d vectors of
    model-b in version 2, and those chunks' ids."""
    collection = make_collection(db, dimensions=3)
    _add_version(db, collection, 2, embedding_model="model-b", dimensions=2, metric="l2")
    document = make_document(db, collection)
    ids = []
    for ordinal, (v3, v2) in enumerate(zip(VECTORS_3D, VECTORS_2D, strict=True)):
        chunk = make_chunk(db, document, ordinal=ordinal, text=f"chunk {ordinal}")
        make_embedding(db, chunk, v3)
        make_embedding(db, chunk, v2, model="model-b", version=2)
        ids.append(chunk.id)
    return collection, ids


def _nearest(connection: Connection, collection: Collection, query: list[float]) -> list[int]:
    return list(
        connection.execute(
            sql("SELECT chunk_id FROM memora.search_vector(:name, CAST(:query AS vector), 3)"),
            {"name": collection.name, "query": str(query)},
        ).scalars()
    )


def test_a_new_collection_has_version_1_as_its_columns_say(db: Session, connection: Connection) -> None:
    collection = make_collection(db, dimensions=8, metric="l2", storage="halfvec", hnsw_m=8)

    version = db.scalars(select(EmbeddingVersion).where(EmbeddingVersion.collection_id == collection.id)).one()
    assert (version.number, collection.active_version) == (1, 1)
    assert (version.embedding_model, version.dimensions, version.metric, version.storage, version.hnsw_m) == (
        "test-model", 8, "l2", "halfvec", 8,
    )  # fmt: skip
    assert _regclass(connection, f"embedding_c{collection.id}_v1") is not None
    indexdef = _indexdef(connection, f"embedding_c{collection.id}_v1_hnsw")
    assert indexdef is not None
    assert "USING hnsw (((embedding)::halfvec(8)) halfvec_l2_ops) WITH (m='8'" in indexdef


def test_each_version_has_its_own_table_checks_and_index(db: Session, connection: Connection) -> None:
    collection, _ = _two_versions(db)

    indexdef = _indexdef(connection, f"embedding_c{collection.id}_v2_hnsw")
    assert indexdef is not None
    assert "USING hnsw (((embedding)::vector(2)) vector_l2_ops)" in indexdef
    count = "SELECT count(*) FROM memora.embedding_c{id}_v{n}"
    assert connection.execute(sql(count.format(id=collection.id, n=1))).scalar() == 3
    assert connection.execute(sql(count.format(id=collection.id, n=2))).scalar() == 3
    # Version 2 refuses vectors of version 1's model and size.
    chunk = make_chunk(db, make_document(db, collection))
    with pytest.raises(DBAPIError, match=r"embedding_c\d+_v2_dimensions"), db.begin_nested():
        make_embedding(db, chunk, [1.0, 0.0, 0.0], model="model-b", version=2)
    with pytest.raises(IntegrityError, match=r"embedding_c\d+_v2_model"), db.begin_nested():
        make_embedding(db, chunk, [1.0, 0.0], version=2)


def test_search_reads_the_active_version_and_follows_an_activation(db: Session, connection: Connection) -> None:
    collection, ids = _two_versions(db)

    before = _nearest(connection, collection, QUERY_3D)
    db.execute(update(Collection).where(Collection.id == collection.id).values(active_version=2))
    db.refresh(collection)
    after = _nearest(connection, collection, QUERY_2D)
    db.execute(update(Collection).where(Collection.id == collection.id).values(active_version=1))
    db.refresh(collection)
    rolled_back = _nearest(connection, collection, QUERY_3D)

    assert before == rolled_back == [ids[0], ids[1], ids[2]]
    assert after == [ids[2], ids[1], ids[0]]  # L2 in version 2's space


def test_activating_a_version_makes_the_collection_s_columns_its_own(db: Session) -> None:
    collection, _ = _two_versions(db)

    db.execute(update(Collection).where(Collection.id == collection.id).values(active_version=2))
    db.refresh(collection)

    assert (collection.embedding_model, collection.dimensions, collection.metric) == ("model-b", 2, "l2")
    with pytest.raises(DBAPIError, match="has no embedding version 7"), db.begin_nested():
        db.execute(update(Collection).where(Collection.id == collection.id).values(active_version=7))


def test_changing_the_collection_s_settings_changes_its_active_version(db: Session, connection: Connection) -> None:
    collection, _ = _two_versions(db)

    db.execute(update(Collection).where(Collection.id == collection.id).values(metric="inner_product", hnsw_m=24))

    versions = {
        v.number: v for v in db.scalars(select(EmbeddingVersion).where(EmbeddingVersion.collection_id == collection.id))
    }
    db.refresh(versions[1])
    db.refresh(versions[2])
    assert (versions[1].metric, versions[1].hnsw_m) == ("inner_product", 24)
    assert (versions[2].metric, versions[2].hnsw_m) == ("l2", 16)
    indexdef = _indexdef(connection, f"embedding_c{collection.id}_v1_hnsw")
    assert indexdef is not None
    assert "vector_ip_ops" in indexdef


def test_deleting_a_chunk_deletes_its_vectors_in_every_version(db: Session) -> None:
    collection, ids = _two_versions(db)

    db.execute(delete(Chunk).where(Chunk.collection_id == collection.id, Chunk.id == ids[0]))

    left = db.execute(
        select(Embedding.version, Embedding.chunk_id).where(Embedding.collection_id == collection.id)
    ).all()
    assert sorted(left) == sorted((version, chunk_id) for version in (1, 2) for chunk_id in ids[1:])


def test_dropping_a_version_drops_its_table_and_the_active_one_cannot_go(db: Session, connection: Connection) -> None:
    collection, _ = _two_versions(db)

    db.execute(delete(EmbeddingVersion).where(EmbeddingVersion.collection_id == collection.id,
                                              EmbeddingVersion.number == 2))  # fmt: skip

    assert _regclass(connection, f"embedding_c{collection.id}_v2") is None
    assert _regclass(connection, f"embedding_c{collection.id}_v1") is not None
    db.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))  # checked at commit otherwise
    with pytest.raises(IntegrityError, match="fk_collection_id_active_version_embedding_version"), db.begin_nested():
        db.execute(delete(EmbeddingVersion).where(EmbeddingVersion.collection_id == collection.id))


def test_deleting_a_collection_drops_every_version(db: Session, connection: Connection) -> None:
    collection, _ = _two_versions(db)

    db.execute(delete(Collection).where(Collection.id == collection.id))

    assert _regclass(connection, f"embedding_c{collection.id}") is None
    assert _regclass(connection, f"embedding_c{collection.id}_v2") is None
    assert db.scalar(select(EmbeddingVersion.number).where(EmbeddingVersion.collection_id == collection.id)) is None


def test_a_change_made_to_the_active_version_reaches_the_collection(db: Session, connection: Connection) -> None:
    collection, ids = _two_versions(db)

    db.execute(
        update(EmbeddingVersion)
        .where(EmbeddingVersion.collection_id == collection.id, EmbeddingVersion.number == 1)
        .values(metric="l2")
    )
    db.execute(
        update(EmbeddingVersion)
        .where(EmbeddingVersion.collection_id == collection.id, EmbeddingVersion.number == 2)
        .values(hnsw_m=8)
    )
    db.refresh(collection)

    # The collection's columns are version 1's; version 2 is not active, so its change stays its own.
    assert (collection.metric, collection.hnsw_m) == ("l2", 16)
    # Through the nearest function (3 rows) and planned per call (a filter): the same metric, the same order.
    shallow = _nearest(connection, collection, QUERY_3D)
    filtered = list(
        connection.execute(
            sql("SELECT chunk_id FROM memora.search_vector(:name, CAST(:query AS vector), 3, filter => '{}')"),
            {"name": collection.name, "query": str(QUERY_3D)},
        ).scalars()
    )
    distances = connection.execute(
        sql("SELECT vector_distance FROM memora.search_vector(:name, CAST(:query AS vector), 1)"),
        {"name": collection.name, "query": str(QUERY_3D)},
    ).scalar()
    assert shallow == filtered == [ids[0], ids[1], ids[2]]
    assert distances == pytest.approx(((0.9 - 1.0) ** 2 + 0.1**2) ** 0.5)


def test_one_statement_does_not_both_switch_versions_and_change_settings(db: Session) -> None:
    collection, _ = _two_versions(db)

    with pytest.raises(DBAPIError, match="not both in one statement"), db.begin_nested():
        db.execute(update(Collection).where(Collection.id == collection.id).values(active_version=2, hnsw_m=32))


def test_a_version_keeps_its_number(db: Session) -> None:
    collection, _ = _two_versions(db)

    with pytest.raises(DBAPIError, match="keeps its collection and number"), db.begin_nested():
        db.execute(
            update(EmbeddingVersion)
            .where(EmbeddingVersion.collection_id == collection.id, EmbeddingVersion.number == 2)
            .values(number=3)
        )


def test_a_search_may_read_a_version_that_is_not_active(db: Session, connection: Connection) -> None:
    collection, ids = _two_versions(db)
    params = {"name": collection.name, "query": str(QUERY_2D)}

    vector = connection.execute(
        sql("SELECT chunk_id FROM memora.search_vector_v2(:name, CAST(:query AS vector), 3, version => 2)"), params
    ).scalars()
    hybrid = connection.execute(
        sql("SELECT chunk_id, vector_distance FROM memora.search_hybrid_v2(:name, 'chunk', CAST(:query AS vector), 3,"
            " version => 2) ORDER BY vector_rank"),
        params,
    ).all()  # fmt: skip

    # Version 2 (2-d, L2) while version 1 (3-d) stays active.
    assert list(vector) == [ids[2], ids[1], ids[0]]
    assert [row[0] for row in hybrid] == [ids[2], ids[1], ids[0]]
    assert hybrid[0][1] == pytest.approx(((0.1 - 0.0) ** 2 + 0.0**2) ** 0.5, abs=1e-6)
    assert collection.active_version == 1


@pytest.mark.parametrize(
    ("version", "query", "message"),
    [
        (7, QUERY_2D, "version: collection '.*' has no embedding version 7"),
        (2, QUERY_3D, "query_embedding: has 3 dimensions; version 2 of collection '.*' has 2"),
    ],
)
def test_a_search_of_a_version_the_collection_lacks_or_does_not_fit_is_refused(
    db: Session, connection: Connection, version: int, query: list[float], message: str
) -> None:
    collection, _ = _two_versions(db)

    with pytest.raises(DBAPIError, match=message):
        connection.execute(
            sql("SELECT * FROM memora.search_vector_v2(:name, CAST(:query AS vector), 3, version => :version)"),
            {"name": collection.name, "query": str(query), "version": version},
        )


def test_a_version_with_an_adapter_maps_each_query_before_it_searches(db: Session, connection: Connection) -> None:
    collection = make_collection(db, dimensions=3)
    _add_version(db, collection, 2, adapter={"base": 1})
    reverse = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]  # W: the query's coordinates in reverse order
    for row, weights in enumerate(reverse):
        db.execute(
            text(q("INSERT INTO memora.embedding_adapter VALUES (:c, 2, :row, CAST(:w AS vector))")),
            {"c": collection.id, "row": row, "w": str(weights)},
        )
    document = make_document(db, collection)
    ids = []
    for ordinal, vector in enumerate(VECTORS_3D):
        chunk = make_chunk(db, document, ordinal=ordinal, text=f"chunk {ordinal}")
        make_embedding(db, chunk, vector)
        make_embedding(db, chunk, vector, version=2)  # the same vectors: only the query changes
        ids.append(chunk.id)
    db.commit()
    params = {"name": collection.name, "query": str(QUERY_3D), "c": collection.id}

    adapted = connection.execute(sql("SELECT memora.adapt_query(:c, 2, CAST(:query AS vector))::text"), params)
    walked = connection.execute(
        sql("SELECT chunk_id FROM memora.search_vector_v2(:name, CAST(:query AS vector), 3, version => 2)"), params
    ).scalars()
    filtered = connection.execute(
        sql("SELECT chunk_id FROM memora.search_vector_v2(:name, CAST(:query AS vector), 3, filter => '{}',"
            " version => 2)"),
        params,
    ).scalars()  # fmt: skip
    unadapted = connection.execute(
        sql("SELECT memora.adapt_query(:c, 1, CAST(:query AS vector)) IS NULL"), params
    ).scalar()

    assert adapted.scalar() == "[0,0.1,0.9]"
    assert list(walked) == list(filtered) == [ids[2], ids[1], ids[0]]
    assert unadapted is True
    assert _nearest(connection, collection, QUERY_3D)[0] == ids[0]  # version 1, active, has no adapter
