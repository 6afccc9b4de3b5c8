"""The search functions of sql/idempotent/ (BM25 statistics, filters, text/vector/hybrid search) on their own."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.db.models import Collection
from tests.factories import make_chunk, make_collection, make_document, make_embedding

WORDS = [f"w{n}x" for n in range(400)]


def _zipf_text(rng: random.Random, words: int) -> str:
    # Word i with weight 1 / (i + 1): a few terms in most chunks, most terms in a few.
    return " ".join(rng.choices(WORDS, weights=[1 / (i + 1) for i in range(len(WORDS))], k=words))


def _corpus(db: Session, chunks: int = 300, seed: int = 7) -> Collection:
    rng = random.Random(seed)
    collection = make_collection(db)
    for n in range(chunks // 3):
        document = make_document(db, collection, title="", metadata_={"bucket": n % 10})
        for ordinal in range(3):
            make_chunk(db, document, ordinal=ordinal, title="", text=_zipf_text(rng, rng.randint(5, 60)))
    return collection


def _stats(db: Session, collection_id: int) -> tuple[Any, dict[str, int]]:
    totals = db.execute(
        text("SELECT chunks, total_length FROM memora.text_stats WHERE collection_id = :c"), {"c": collection_id}
    ).one_or_none()
    terms = db.execute(
        text("SELECT lexeme, df FROM memora.term_stats WHERE collection_id = :c"), {"c": collection_id}
    ).all()
    return (tuple(totals) if totals else None), dict(terms)  # type: ignore[arg-type]


def _recount(db: Session, collection_id: int) -> tuple[Any, dict[str, int]]:
    totals = db.execute(
        text("SELECT count(*), sum(length(tsv)) FROM memora.chunk WHERE collection_id = :c"), {"c": collection_id}
    ).one()
    terms = db.execute(
        text(
            "SELECT u.lexeme, count(*) FROM memora.chunk c, unnest(c.tsv) u "
            "WHERE c.collection_id = :c GROUP BY u.lexeme"
        ),
        {"c": collection_id},
    ).all()
    return (tuple(totals) if totals[0] else None), dict(terms)  # type: ignore[arg-type]


def _bm25(db: Session, collection: Collection, query: str, k1: float = 0.9, b: float = 0.4) -> list[tuple[int, float]]:
    """BM25 computed here from the chunks' tsvectors: what search_text must return, best first."""
    rows = db.execute(
        text(
            "SELECT c.id, u.lexeme, cardinality(u.positions) FROM memora.chunk c, unnest(c.tsv) u "
            "WHERE c.collection_id = :c"
        ),
        {"c": collection.id},
    ).all()
    chunks: dict[int, dict[str, int]] = {}
    for chunk_id, lexeme, tf in rows:
        chunks.setdefault(chunk_id, {})[lexeme] = tf
    df = Counter(lexeme for terms in chunks.values() for lexeme in terms)
    n = len(chunks)
    average = sum(len(terms) for terms in chunks.values()) / n
    query_terms = db.execute(text("SELECT memora.search_terms('english', :q)"), {"q": query}).scalar_one() or []
    scores = []
    for chunk_id, terms in chunks.items():
        score = 0.0
        for term in query_terms:
            if term in terms:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                tf = terms[term]
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(terms) / average))
        if score > 0:
            scores.append((chunk_id, score))
    return sorted(scores, key=lambda item: (-item[1], item[0]))


def _search_text(db: Session, collection: Collection, query: str, k: int, **kwargs: Any) -> list[tuple[int, float]]:
    filter_ = kwargs.get("filter")
    rows = db.execute(
        text("SELECT chunk_id, score FROM memora.search_text(:name, :q, :k, CAST(:f AS jsonb))"),
        {"name": collection.name, "q": query, "k": k, "f": None if filter_ is None else _json(filter_)},
    ).all()
    return [(row[0], row[1]) for row in rows]


def _json(value: Any) -> str:
    return json.dumps(value)


def _sqlstate(error: DBAPIError) -> tuple[str | None, str | None]:
    orig = error.orig
    assert isinstance(orig, psycopg.Error)
    return orig.sqlstate, orig.diag.message_detail


# BM25 statistics


def test_statistics_follow_inserts_updates_and_deletes(db: Session) -> None:
    collection = _corpus(db, chunks=60)
    assert _stats(db, collection.id) == _recount(db, collection.id)
    assert _stats(db, collection.id)[0] == (60, _recount(db, collection.id)[0][1])

    db.execute(
        text("UPDATE memora.chunk SET text = text || ' brandnewterm' WHERE collection_id = :c AND ordinal = 0"),
        {"c": collection.id},
    )
    assert _stats(db, collection.id) == _recount(db, collection.id)
    assert _stats(db, collection.id)[1]["brandnewterm"] == 20

    # An update that leaves the text alone (renumbering) changes nothing.
    before = _stats(db, collection.id)
    db.execute(text("UPDATE memora.chunk SET ordinal = ordinal + 10 WHERE collection_id = :c"), {"c": collection.id})
    assert _stats(db, collection.id) == before

    db.execute(
        text(
            "DELETE FROM memora.document WHERE collection_id = :c AND id IN (SELECT id FROM memora.document "
            "WHERE collection_id = :c ORDER BY id LIMIT 5)"
        ),
        {"c": collection.id},
    )
    assert _stats(db, collection.id) == _recount(db, collection.id)
    assert _stats(db, collection.id)[0][0] == 45

    db.execute(text("DELETE FROM memora.chunk WHERE collection_id = :c"), {"c": collection.id})
    assert _stats(db, collection.id) == ((0, 0), {})


def test_deleting_a_collection_deletes_its_statistics(db: Session) -> None:
    collection = _corpus(db, chunks=30)
    other = _corpus(db, chunks=30, seed=8)
    other_stats = _stats(db, other.id)

    db.execute(text("DELETE FROM memora.collection WHERE id = :c"), {"c": collection.id})

    assert _stats(db, collection.id) == (None, {})
    assert _stats(db, other.id) == other_stats


def test_refresh_recounts_statistics(db: Session) -> None:
    collection = _corpus(db, chunks=30)
    db.execute(text("UPDATE memora.term_stats SET df = 999 WHERE collection_id = :c"), {"c": collection.id})

    db.execute(text("SELECT memora.refresh_text_stats(:c)"), {"c": collection.id})

    assert _stats(db, collection.id) == _recount(db, collection.id)


# BM25 search


@pytest.mark.parametrize("k", [10, 40])
@pytest.mark.parametrize("first_pass", ["", "1"])
def test_search_text_is_exact_bm25(db: Session, first_pass: str, k: int) -> None:
    collection = _corpus(db)
    # "1" makes every query read only its rarest terms first (as few as give k chunks), so the pruned second pass
    # decides the result.
    db.execute(text("SELECT set_config('memora.bm25_first_pass', :v, true)"), {"v": first_pass})
    rng = random.Random(11)
    queries = [" ".join(rng.sample(WORDS[:60], rng.randint(3, 8))) for _ in range(25)]
    queries += ["w0x w1x w2x", "w0x w399x", "w398x", "w1x w1x w5x"]
    # Long queries are scored and pruned another way (more than 12 and more than 20 terms).
    queries += [" ".join(rng.sample(WORDS[:300], n)) for n in (15, 30, 45)]

    for query in queries:
        expected = _bm25(db, collection, query)[:k]
        found = _search_text(db, collection, query, k)
        assert [score for _, score in found] == pytest.approx([score for _, score in expected], rel=1e-6), query
        assert {chunk for chunk, _ in found} == {chunk for chunk, _ in expected}, query


@pytest.mark.parametrize("depth", [0, 1, 2, 6, None])
def test_bm25_bound_query_matches_every_chunk_whose_bound_is_above_the_threshold(
    db: Session, depth: int | None
) -> None:
    rng = random.Random(str(depth))
    lexemes = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    # Every subset of the six lexemes, as the tsvector of a chunk that has just those.
    subsets = [[x for i, x in enumerate(lexemes) if mask >> i & 1] for mask in range(1, 2 ** len(lexemes))]
    for _ in range(20):
        bounds = sorted((round(rng.uniform(0.5, 9), 2) for _ in lexemes), reverse=True)
        threshold = round(rng.uniform(-1, sum(bounds) + 1), 2)
        worth = {x: bound for x, bound in zip(lexemes, bounds, strict=True)}
        matched = db.execute(
            text(
                "SELECT coalesce(array_to_tsvector(CAST(s AS text[])) "
                "@@ memora.bm25_bound_query(:lexemes, :bounds, :threshold, :depth), false) "
                "FROM unnest(CAST(:subsets AS text[])) WITH ORDINALITY u (s, i) ORDER BY i"
            ),
            {"lexemes": lexemes, "bounds": bounds, "threshold": threshold, "depth": depth,
             "subsets": ["{" + ",".join(s) + "}" for s in subsets]},
        ).scalars().all()  # fmt: skip
        for subset, match in zip(subsets, matched, strict=True):
            above = sum(worth[x] for x in subset) > threshold
            if depth is not None and depth >= len(lexemes):
                assert match == above, (bounds, threshold, subset)
            else:  # a superset below DEPTH levels, never a chunk too few
                assert match or not above, (bounds, threshold, subset)


def test_search_text_counts_every_term_frequency_a_tsvector_holds(db: Session) -> None:
    # BM25 reads a term's frequency from ts_rank (sql/idempotent/005-search-bm25.sql): exact up to 255 positions.
    collection = make_collection(db)
    document = make_document(db, collection, title="")
    for ordinal, tf in enumerate([1, 2, 3, 4, 7, 10, 31, 64, 100, 150, 200, 254, 255, 300]):
        make_chunk(db, document, ordinal=ordinal, title="", text=" ".join(["w1x"] * tf + ["w2x", f"w{ordinal + 3}x"]))

    found = _search_text(db, collection, "w1x w2x", 20)

    expected = _bm25(db, collection, "w1x w2x")
    assert [score for _, score in found] == pytest.approx([score for _, score in expected], rel=1e-6)
    assert [chunk for chunk, _ in found] == [chunk for chunk, _ in expected]


def test_search_text_uses_the_collection_k1_and_b(db: Session) -> None:
    collection = _corpus(db)
    db.execute(text("UPDATE memora.collection SET bm25_k1 = 2.0, bm25_b = 1.0 WHERE id = :c"), {"c": collection.id})

    found = _search_text(db, collection, "w3x w17x w40x", 5)

    expected = _bm25(db, collection, "w3x w17x w40x", k1=2.0, b=1.0)[:5]
    assert [score for _, score in found] == pytest.approx([score for _, score in expected], rel=1e-6)


def test_search_text_ranks_a_partial_match(db: Session) -> None:
    collection = make_collection(db)
    both = make_chunk(db, make_document(db, collection), text="Cats chase mice in the barn.")
    one = make_chunk(db, make_document(db, collection), text="Mice live in the walls.")
    make_chunk(db, make_document(db, collection), text="Dogs sleep all day.")

    found = [chunk for chunk, _ in _search_text(db, collection, "cat mice", 10)]

    assert found == [both.id, one.id]  # OR semantics: one term is enough to be found


def test_search_text_with_only_stop_words_finds_nothing(db: Session) -> None:
    collection = _corpus(db, chunks=9)
    assert _search_text(db, collection, "the and of", 10) == []


def test_search_text_filters(db: Session) -> None:
    collection = _corpus(db)

    found = _search_text(db, collection, "w0x w1x", 20, filter={"bucket": 3})

    assert len(found) == 20
    buckets = db.execute(
        text(
            "SELECT DISTINCT d.metadata->'bucket' FROM memora.chunk c JOIN memora.document d "
            "ON d.collection_id = c.collection_id AND d.id = c.document_id WHERE c.id = ANY(:ids)"
        ),
        {"ids": [chunk for chunk, _ in found]},
    ).scalars()
    assert list(buckets) == [3]


# Vector and hybrid search


def _vectors(db: Session, chunks: int = 200) -> Collection:
    rng = random.Random(3)
    collection = make_collection(db)
    for n in range(chunks):
        document = make_document(db, collection, metadata_={"bucket": n % 10})
        chunk = make_chunk(db, document, text=f"chunk {n} " + _zipf_text(rng, 10))
        make_embedding(db, chunk, [rng.gauss(0, 1) for _ in range(3)])
    return collection


def _search_vector(db: Session, collection: Collection, vector: list[float], k: int, **kwargs: Any) -> list[Any]:
    return db.execute(
        text(
            "SELECT chunk_id, score, vector_rank, vector_distance FROM memora.search_vector(:name, "
            "CAST(:v AS vector), :k, CAST(:f AS jsonb), exact => :exact)"
        ),
        {
            "name": collection.name,
            "v": str(vector),
            "k": k,
            "f": _json(kwargs["filter"]) if "filter" in kwargs else None,
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
    rows = db.execute(
        text(
            "SELECT chunk_id, score, text_rank, vector_rank FROM memora.search_hybrid(:name, 'w0x w5x', "
            "CAST('[1, 0, 0]' AS vector), 10, fusion => 'rrf', rrf_k => 30, text_weight => 2, vector_weight => 0.5)"
        ),
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
        for row in db.execute(text("SELECT chunk_id, score FROM memora.search_text(:name, :q, 40)"), params)
    }
    semantic = {
        row.chunk_id: row.score
        for row in db.execute(
            text("SELECT chunk_id, score FROM memora.search_vector(:name, CAST(:v AS vector), 40, exact => true)"),
            params,
        )
    }
    rows = db.execute(
        text(
            "SELECT chunk_id, score, text_rank, text_score, vector_rank, vector_score FROM memora.search_hybrid_v1("
            ":name, :q, CAST(:v AS vector), 10, fusion => 'convex', text_weight => 2, vector_weight => 0.5, "
            "candidates => 40, exact => true)"
        ),
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
    call = "SELECT chunk_id, score FROM memora.search_hybrid(:name, 'w0x w5x', CAST('[1, 0, 0]' AS vector), 10{})"

    default = db.execute(text(call.format("")), {"name": collection.name}).all()
    convex = db.execute(text(call.format(", fusion => 'convex'")), {"name": collection.name}).all()
    rrf = db.execute(text(call.format(", fusion => 'rrf'")), {"name": collection.name}).all()

    assert default == convex
    assert default != rrf


@pytest.mark.parametrize(
    ("value", "low", "high", "expected"),
    [(2.0, 1.0, 3.0, 0.5), (1.0, 1.0, 3.0, 0.0), (3.0, 1.0, 3.0, 1.0), (5.0, 5.0, 5.0, 1.0), (None, 0.0, 1.0, None)],
)
def test_min_max(db: Session, value: float | None, low: float, high: float, expected: float | None) -> None:
    scaled = db.execute(text("SELECT memora.min_max(:v, :l, :h)"), {"v": value, "l": low, "h": high}).scalar_one()

    assert scaled == expected


def test_search_hybrid_with_a_filter_keeps_both_branches_filtered(db: Session) -> None:
    collection = _vectors(db)
    rows = db.execute(
        text(
            "SELECT h.chunk_id, d.metadata->>'bucket' FROM memora.search_hybrid(:name, 'w0x w1x chunk', "
            "CAST('[0, 1, 0]' AS vector), 12, '{\"bucket\": {\"$in\": [2, 4]}}') h "
            "JOIN memora.document d ON d.id = h.document_id"
        ),
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

    rows = db.execute(
        text("SELECT external_id FROM memora.search_text(:name, 'shared words', 10, CAST(:f AS jsonb))"),
        {"name": collection.name, "f": _json(filter_)},
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
    collection = _corpus(db, chunks=3)
    with pytest.raises(DBAPIError) as caught:
        db.execute(
            text("SELECT * FROM memora.search_text(:name, 'w0x', 5, CAST(:f AS jsonb))"),
            {"name": collection.name, "f": _json(filter_)},
        )
    assert _sqlstate(caught.value) == ("22023", path)


@pytest.mark.parametrize(
    "hostile",
    ["') OR 1=1 --", "x'; DROP TABLE memora.chunk; --", '"; SELECT 1; --', "x$1[1]", "a\\'b"],
)
def test_filter_keys_and_values_are_data(db: Session, hostile: str) -> None:
    compiled = db.execute(
        text("SELECT predicate, keys, vals FROM memora.compile_filter(CAST(:f AS jsonb), 3, 4)"),
        {"f": _json({hostile: hostile, "$or": [{"k": {"$in": [hostile]}}, {hostile: {"$gt": hostile}}]})},
    ).one()

    assert hostile not in compiled.predicate
    assert "OR 1=1" not in compiled.predicate
    assert "DROP" not in compiled.predicate
    assert set(hostile.split(".")) <= set(compiled.keys)  # dots separate path segments

    collection = _corpus(db, chunks=6)
    found = db.execute(
        text("SELECT count(*) FROM memora.search_text(:name, 'w0x w1x', 10, CAST(:f AS jsonb))"),
        {"name": collection.name, "f": _json({hostile: hostile})},
    ).scalar_one()
    assert found == 0
    assert db.execute(text("SELECT count(*) FROM memora.chunk WHERE collection_id = :c"), {"c": collection.id}).scalar()


# Arguments


@pytest.mark.parametrize(
    ("call", "detail"),
    [
        ("memora.search_text(:name, 'w0x', 0)", "k"),
        ("memora.search_text(:name, 'w0x', 1001)", "k"),
        ("memora.search_text(:name, '   ', 5)", "query"),
        ("memora.search_vector(:name, '[1, 2]', 5)", "query_embedding"),
        ("memora.search_vector(:name, '[1, 2, 3]', 5, ef_search => 0)", "ef_search"),
        ("memora.search_vector(:name, NULL, 5)", "query_embedding"),
        ("memora.search_hybrid(:name, 'w0x', '[1, 2, 3]', 5, rrf_k => -1)", "rrf_k"),
        ("memora.search_hybrid(:name, 'w0x', '[1, 2, 3]', 5, fusion => 'borda')", "fusion"),
        ("memora.search_hybrid(:name, 'w0x', '[1, 2, 3]', 5, fusion => NULL)", "fusion"),
        ("memora.search_hybrid(:name, 'w0x', '[1, 2, 3]', 5, candidates => 2)", "candidates"),
        ("memora.search_hybrid(:name, 'w0x', '[1, 2, 3]', 5, text_weight => -1)", "text_weight"),
        ("memora.search_hybrid(:name, NULL, NULL, 5)", "query"),
        ("memora.search_text('no-such-collection', 'w0x', 5)", "collection"),
    ],
)
def test_bad_arguments_are_named(db: Session, call: str, detail: str) -> None:
    collection = _corpus(db, chunks=3)
    with pytest.raises(DBAPIError) as caught:
        db.execute(text(f"SELECT * FROM {call}"), {"name": collection.name})
    expected_state = "P0002" if detail == "collection" else "22023"
    assert _sqlstate(caught.value) == (expected_state, detail)
