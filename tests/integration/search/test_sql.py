"""The search functions of sql/idempotent/ on their own: vector and hybrid search, filters, bad arguments."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.db.models import Collection
from tests.factories import make_chunk, make_collection, make_document, make_embedding
from tests.integration.search.sql_support import as_json, corpus, run, sqlstate, zipf_text

# Vector and hybrid search


def _vectors(db: Session, chunks: int = 200) -> Collection:
    rng = random.Random(3)
    collection = make_collection(db)
    for n in range(chunks):
        document = make_document(db, collection, metadata_={"bucket": n % 10})
        chunk = make_chunk(db, document, text=f"chunk {n} " + zipf_text(rng, 10))
        make_embedding(db, chunk, [rng.gauss(0, 1) for _ in range(3)])
    return collection


def _search_vector(db: Session, collection: Collection, vector: list[float], k: int, **kwargs: Any) -> list[Any]:
    return run(
        db,
        "SELECT chunk_id, score, vector_rank, vector_distance FROM memora.search_vector(%(name)s, "
        "CAST(%(v)s AS vector), %(k)s, CAST(%(f)s AS jsonb), exact => %(exact)s)",
        {
            "name": collection.name,
            "v": str(vector),
            "k": k,
            "f": as_json(kwargs["filter"]) if "filter" in kwargs else None,
            "exact": kwargs.get("exact", False),
        },
    ).all()


def test_search_vector_matches_exact_search(db: Session) -> None:
    collection = _vectors(db)
    query = [0.3, -1.0, 0.5]

    approximate = _search_vector(db, collection, query, 10)
    exact = _search_vector(db, collection, query, 10, exact=True)

    assert [row.chunk_id for row in approximate] == [row.chunk_id for row in exact]
    assert [row.vector_rank for row in exact] == list(range(1, 11))
    assert all(math.isclose(row.score, 1 - row.vector_distance) for row in exact)
    assert [row.vector_distance for row in exact] == sorted(row.vector_distance for row in exact)


def test_a_selective_filter_still_fills_k(db: Session) -> None:
    collection = _vectors(db)

    found = _search_vector(db, collection, [1.0, 0.0, 0.0], 15, filter={"bucket": 7})

    assert len(found) == 15  # 20 chunks have bucket 7


def test_search_hybrid_fuses_ranks(db: Session) -> None:
    collection = _vectors(db)
    rows = run(
        db,
        "SELECT chunk_id, score, text_rank, vector_rank FROM memora.search_hybrid(%(name)s, 'w0x w5x', "
        "CAST('[1, 0, 0]' AS vector), 10, fusion => 'rrf', rrf_k => 30, text_weight => 2, vector_weight => 0.5)",
        {"name": collection.name},
    ).all()

    assert len(rows) == 10
    for row in rows:
        expected = (2 / (30 + row.text_rank) if row.text_rank else 0) + (
            0.5 / (30 + row.vector_rank) if row.vector_rank else 0
        )
        assert math.isclose(row.score, expected)
    assert [row.score for row in rows] == sorted((row.score for row in rows), reverse=True)
    assert any(row.text_rank and row.vector_rank is None for row in rows) or any(
        row.text_rank and row.vector_rank for row in rows
    )


def _min_max(scores: dict[int, float]) -> dict[int, float]:
    low, high = min(scores.values()), max(scores.values())
    return {chunk: (score - low) / (high - low) for chunk, score in scores.items()}


def test_search_hybrid_convex_fusion_is_a_weighted_mean_of_min_max_scores(db: Session) -> None:
    collection = _vectors(db)
    params = {"name": collection.name, "q": "w0x w5x", "v": "[1, 0, 0]"}
    lexical = {
        row.chunk_id: row.score
        for row in run(db, "SELECT chunk_id, score FROM memora.search_text(%(name)s, %(q)s, 40)", params)
    }
    semantic = {
        row.chunk_id: row.score
        for row in run(
            db,
            "SELECT chunk_id, score FROM memora.search_vector(%(name)s, CAST(%(v)s AS vector), 40, exact => true)",
            params,
        )
    }
    rows = run(
        db,
        "SELECT chunk_id, score, text_rank, text_score, vector_rank, vector_score FROM memora.search_hybrid_v1("
        "%(name)s, %(q)s, CAST(%(v)s AS vector), 10, fusion => 'convex', text_weight => 2, vector_weight => 0.5, "
        "candidates => 40, exact => true)",
        params,
    ).all()

    text_part, vector_part = _min_max(lexical), _min_max(semantic)
    expected = {
        chunk: (2 * text_part.get(chunk, 0) + 0.5 * vector_part.get(chunk, 0)) / 2.5
        for chunk in lexical.keys() | semantic.keys()
    }
    best = sorted(expected, key=lambda chunk: (-expected[chunk], chunk))[:10]
    assert [row.chunk_id for row in rows] == best
    for row in rows:
        assert math.isclose(row.score, expected[row.chunk_id])
        assert row.text_score == lexical.get(row.chunk_id)
        assert row.vector_score == pytest.approx(semantic.get(row.chunk_id))
        assert (row.text_rank is None) == (row.chunk_id not in lexical)
        assert (row.vector_rank is None) == (row.chunk_id not in semantic)
    assert 0 <= rows[-1].score <= rows[0].score <= 1


def test_search_hybrid_fuses_convex_by_default(db: Session) -> None:
    collection = _vectors(db)
    call = "SELECT chunk_id, score FROM memora.search_hybrid(%(name)s, 'w0x w5x', CAST('[1, 0, 0]' AS vector), 10{})"

    default = run(db, call.format(""), {"name": collection.name}).all()
    convex = run(db, call.format(", fusion => 'convex'"), {"name": collection.name}).all()
    rrf = run(db, call.format(", fusion => 'rrf'"), {"name": collection.name}).all()

    assert default == convex
    assert default != rrf


@pytest.mark.parametrize(
    ("value", "low", "high", "expected"),
    [(2.0, 1.0, 3.0, 0.5), (1.0, 1.0, 3.0, 0.0), (3.0, 1.0, 3.0, 1.0), (5.0, 5.0, 5.0, 1.0), (None, 0.0, 1.0, None)],
)
def test_min_max(db: Session, value: float | None, low: float, high: float, expected: float | None) -> None:
    scaled = run(db, "SELECT memora.min_max(%(v)s, %(l)s, %(h)s)", {"v": value, "l": low, "h": high}).scalar_one()

    assert scaled == expected


def test_search_hybrid_with_a_filter_keeps_both_branches_filtered(db: Session) -> None:
    collection = _vectors(db)
    rows = run(
        db,
        "SELECT h.chunk_id, d.metadata->>'bucket' FROM memora.search_hybrid(%(name)s, 'w0x w1x chunk', "
        "CAST('[0, 1, 0]' AS vector), 12, '{\"bucket\": {\"$in\": [2, 4]}}') h "
        "JOIN memora.document d ON d.id = h.document_id",
        {"name": collection.name},
    ).all()

    assert len(rows) == 12
    assert {bucket for _, bucket in rows} <= {"2", "4"}


# Filters


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"team": "a"}, {"d1", "d3"}),
        ({"team": {"$ne": "a"}}, {"d2", "d4"}),
        ({"tags": "x"}, {"d1", "d2"}),  # an array holding the value
        ({"year": {"$gte": 2020, "$lt": 2025}}, {"d2", "d3"}),
        ({"year": {"$gt": "2020"}}, set()),  # strings do not compare with numbers
        ({"team": {"$in": ["b", "c"]}}, {"d2"}),
        ({"team": {"$nin": ["a"]}}, {"d2", "d4"}),
        ({"nested.level": {"$exists": True}}, {"d4"}),
        ({"nested.level": 2}, {"d4"}),
        ({"team": {"$exists": False}}, {"d4"}),
        ({"$or": [{"team": "b"}, {"year": 2019}]}, {"d1", "d2"}),
        ({"$and": [{"team": "a"}, {"$not": {"year": 2019}}]}, {"d3"}),
        ({"document.external_id": {"$in": ["d1", "d4"]}}, {"d1", "d4"}),
        ({"document.version": 1}, {"d1", "d2", "d3", "d4"}),
        ({"document.created_at": {"$gt": "2000-01-01T00:00:00Z"}}, {"d1", "d2", "d3", "d4"}),
        ({"chunk.page": 2}, {"d3"}),
        ({}, {"d1", "d2", "d3", "d4"}),
    ],
)
def test_filters(db: Session, filter_: dict[str, Any], expected: set[str]) -> None:
    collection = make_collection(db)
    for external_id, metadata, chunk_metadata in [
        ("d1", {"team": "a", "year": 2019, "tags": ["x", "y"]}, {}),
        ("d2", {"team": "b", "year": 2020, "tags": ["x"]}, {}),
        ("d3", {"team": "a", "year": 2024}, {"page": 2}),
        ("d4", {"nested": {"level": 2}}, {"page": 1}),
    ]:
        document = make_document(db, collection, external_id=external_id, metadata_=metadata)
        make_chunk(db, document, text="shared words here", metadata_=chunk_metadata)

    rows = run(
        db,
        "SELECT external_id FROM memora.search_text(%(name)s, 'shared words', 10, CAST(%(f)s AS jsonb))",
        {"name": collection.name, "f": as_json(filter_)},
    ).scalars()

    assert set(rows) == expected


@pytest.mark.parametrize(
    ("filter_", "path"),
    [
        ({"year": {"$regex": "x"}}, "filter.year.$regex"),
        ({"$nor": []}, "filter.$nor"),
        ({"$and": {}}, "filter.$and"),
        ({"$and": [{"a": 1}, {"b": {"$gt": [1]}}]}, "filter.$and[1].b.$gt"),
        ({"a": {"$in": 3}}, "filter.a.$in"),
        ({"a": {"$exists": "yes"}}, "filter.a.$exists"),
        ({"document.colour": "red"}, "filter.document.colour"),
        ({"document.version": "one"}, "filter.document.version.$eq"),
        ({"document.created_at": {"$gt": "not a date"}}, "filter.document.created_at.$gt"),
        ({"a..b": 1}, "filter.a..b"),
        ({"$not": 3}, "filter.$not"),
    ],
)
def test_bad_filters_name_their_path(db: Session, filter_: Any, path: str) -> None:
    collection = corpus(db, chunks=3)
    with pytest.raises(DBAPIError) as caught:
        run(
            db,
            "SELECT * FROM memora.search_text(%(name)s, 'w0x', 5, CAST(%(f)s AS jsonb))",
            {"name": collection.name, "f": as_json(filter_)},
        )
    assert sqlstate(caught.value) == ("22023", path)


@pytest.mark.parametrize(
    "hostile",
    ["') OR 1=1 --", "x'; DROP TABLE memora.chunk; --", '"; SELECT 1; --', "x$1[1]", "a\\'b"],
)
def test_filter_keys_and_values_are_data(db: Session, hostile: str) -> None:
    compiled = run(
        db,
        "SELECT predicate, keys, vals FROM memora.compile_filter(CAST(%(f)s AS jsonb), 3, 4)",
        {"f": as_json({hostile: hostile, "$or": [{"k": {"$in": [hostile]}}, {hostile: {"$gt": hostile}}]})},
    ).one()

    assert hostile not in compiled.predicate
    assert "OR 1=1" not in compiled.predicate
    assert "DROP" not in compiled.predicate
    assert set(hostile.split(".")) <= set(compiled.keys)  # dots separate path segments

    collection = corpus(db, chunks=6)
    found = run(
        db,
        "SELECT count(*) FROM memora.search_text(%(name)s, 'w0x w1x', 10, CAST(%(f)s AS jsonb))",
        {"name": collection.name, "f": as_json({hostile: hostile})},
    ).scalar_one()
    assert found == 0
    assert run(db, "SELECT count(*) FROM memora.chunk WHERE collection_id = %(c)s", {"c": collection.id}).scalar()


# Arguments


@pytest.mark.parametrize(
    ("call", "detail"),
    [
        ("memora.search_text(%(name)s, 'w0x', 0)", "k"),
        ("memora.search_text(%(name)s, 'w0x', 1001)", "k"),
        ("memora.search_text(%(name)s, '   ', 5)", "query"),
        ("memora.search_vector(%(name)s, '[1, 2]', 5)", "query_embedding"),
        ("memora.search_vector(%(name)s, '[1, 2, 3]', 5, ef_search => 0)", "ef_search"),
        ("memora.search_vector(%(name)s, NULL, 5)", "query_embedding"),
        ("memora.search_hybrid(%(name)s, 'w0x', '[1, 2, 3]', 5, rrf_k => -1)", "rrf_k"),
        ("memora.search_hybrid(%(name)s, 'w0x', '[1, 2, 3]', 5, fusion => 'borda')", "fusion"),
        ("memora.search_hybrid(%(name)s, 'w0x', '[1, 2, 3]', 5, fusion => NULL)", "fusion"),
        ("memora.search_hybrid(%(name)s, 'w0x', '[1, 2, 3]', 5, candidates => 2)", "candidates"),
        ("memora.search_hybrid(%(name)s, 'w0x', '[1, 2, 3]', 5, text_weight => -1)", "text_weight"),
        ("memora.search_hybrid(%(name)s, NULL, NULL, 5)", "query"),
        ("memora.search_text('no-such-collection', 'w0x', 5)", "collection"),
    ],
)
def test_bad_arguments_are_named(db: Session, call: str, detail: str) -> None:
    collection = corpus(db, chunks=3)
    with pytest.raises(DBAPIError) as caught:
        run(db, f"SELECT * FROM {call}", {"name": collection.name})
    expected_state = "P0002" if detail == "collection" else "22023"
    assert sqlstate(caught.value) == (expected_state, detail)
