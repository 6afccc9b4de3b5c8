"""Vector search returns k rows for any k, not the ef_search (64 by default) rows one HNSW scan yields."""

from __future__ import annotations

import random

from sqlalchemy.orm import Session

from app.db.models import Collection
from app.db.query import Query
from tests.factories import make_chunk, make_collection, make_document, make_embedding


def _vectors(db: Session, count: int) -> Collection:
    rng = random.Random(3)
    collection = make_collection(db)
    for _ in range(count):
        chunk = make_chunk(db, make_document(db, collection))
        make_embedding(db, chunk, [rng.gauss(0, 1) for _ in range(3)])
    return collection


def test_search_vector_returns_k_rows_past_the_default_ef_search(db: Session) -> None:
    collection = _vectors(db, 150)
    query = {"c": collection.name, "q": "[0.3,-0.2,0.9]"}

    indexed = Query("SELECT chunk_id FROM memora.search_vector_v1(%(c)s, %(q)s, 120)").run(db, query).scalars().all()
    shallow = (
        Query("SELECT chunk_id FROM memora.search_vector_v1(%(c)s, %(q)s, 120, ef_search => 10)")
        .run(db, query)
        .scalars()
        .all()
    )
    exact = (
        Query("SELECT chunk_id FROM memora.search_vector_v1(%(c)s, %(q)s, 120, exact => true)")
        .run(db, query)
        .scalars()
        .all()
    )
    setting = Query("SELECT current_setting('hnsw.ef_search', true)").run(db).scalar()

    assert len(indexed) == 120
    assert len(shallow) == 120
    assert len(set(indexed) & set(exact)) >= 115
    assert setting in {None, "", "40"}  # the function's setting does not outlive it


def test_ef_search_is_the_argument_else_the_session_setting_else_64(db: Session) -> None:
    def ef_search(requested: int | None, k: int) -> int:
        return int(Query("SELECT memora.hnsw_ef_search(%(r)s, %(k)s)").run(db, {"r": requested, "k": k}).scalar_one())

    Query("SELECT set_config('hnsw.ef_search', '40', true)").run(db)  # pgvector's default: Memora's applies
    assert ef_search(None, 10) == 64
    assert ef_search(20, 10) == 20
    assert ef_search(20, 120) == 120  # a scan returns at most ef_search rows
    assert ef_search(None, 5000) == 1000  # pgvector's limit; the iterative scan does the rest

    Query("SELECT set_config('hnsw.ef_search', '150', true)").run(db)  # SET by the session
    assert ef_search(None, 10) == 150
    assert ef_search(30, 10) == 30


def test_hybrid_gets_every_vector_candidate(db: Session) -> None:
    collection = _vectors(db, 150)

    fused = (
        Query(
            "SELECT count(*) FILTER (WHERE vector_rank IS NOT NULL) "
            "FROM memora.search_hybrid_v1(%(c)s, 'nothing', %(q)s, 100, candidates => 100)"
        )
        .run(db, {"c": collection.name, "q": "[1,0,0]"})
        .scalar()
    )

    assert fused == 100
