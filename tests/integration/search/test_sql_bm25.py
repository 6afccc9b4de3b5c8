"""BM25 in sql/idempotent/: the statistics its triggers keep, and search_text's scores, exact against BM25 computed
here from the chunks' tsvectors."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db.models import Collection
from tests.factories import make_chunk, make_collection, make_document
from tests.integration.search.sql_support import WORDS, as_json, corpus, run
from tests.schema import q


def _stats(db: Session, collection_id: int) -> tuple[Any, dict[str, int]]:
    totals = run(
        db, "SELECT chunks, total_length FROM memora.text_stats WHERE collection_id = %(c)s", {"c": collection_id}
    ).one_or_none()
    terms = run(db, "SELECT lexeme, df FROM memora.term_stats WHERE collection_id = %(c)s", {"c": collection_id}).all()
    return (tuple(totals) if totals else None), dict(terms)  # type: ignore[arg-type]


def _recount(db: Session, collection_id: int) -> tuple[Any, dict[str, int]]:
    totals = run(
        db, "SELECT count(*), sum(length(tsv)) FROM memora.chunk WHERE collection_id = %(c)s", {"c": collection_id}
    ).one()
    terms = run(
        db,
        "SELECT u.lexeme, count(*) FROM memora.chunk c, unnest(c.tsv) u "
        "WHERE c.collection_id = %(c)s GROUP BY u.lexeme",
        {"c": collection_id},
    ).all()
    return (tuple(totals) if totals[0] else None), dict(terms)  # type: ignore[arg-type]


def _bm25(db: Session, collection: Collection, query: str, k1: float = 0.9, b: float = 0.4) -> list[tuple[int, float]]:
    """BM25 computed here from the chunks' tsvectors: what search_text must return, best first."""
    rows = run(
        db,
        "SELECT c.id, u.lexeme, cardinality(u.positions) FROM memora.chunk c, unnest(c.tsv) u "
        "WHERE c.collection_id = %(c)s",
        {"c": collection.id},
    ).all()
    chunks: dict[int, dict[str, int]] = {}
    for chunk_id, lexeme, tf in rows:
        chunks.setdefault(chunk_id, {})[lexeme] = tf
    df = Counter(lexeme for terms in chunks.values() for lexeme in terms)
    n = len(chunks)
    average = sum(len(terms) for terms in chunks.values()) / n
    query_terms = run(db, "SELECT memora.search_terms('english', %(q)s)", {"q": query}).scalar_one() or []
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
    rows = run(
        db,
        "SELECT chunk_id, score FROM memora.search_text(%(name)s, %(q)s, %(k)s, CAST(%(f)s AS jsonb))",
        {"name": collection.name, "q": query, "k": k, "f": None if filter_ is None else as_json(filter_)},
    ).all()
    return [(row[0], row[1]) for row in rows]


# BM25 statistics


def test_statistics_follow_inserts_updates_and_deletes(db: Session) -> None:
    collection = corpus(db, chunks=60)
    assert _stats(db, collection.id) == _recount(db, collection.id)
    assert _stats(db, collection.id)[0] == (60, _recount(db, collection.id)[0][1])

    run(
        db,
        "UPDATE memora.chunk SET text = text || ' brandnewterm' WHERE collection_id = %(c)s AND ordinal = 0",
        {"c": collection.id},
    )
    assert _stats(db, collection.id) == _recount(db, collection.id)
    assert _stats(db, collection.id)[1]["brandnewterm"] == 20

    # An update that leaves the text alone (renumbering) changes nothing.
    before = _stats(db, collection.id)
    run(db, "UPDATE memora.chunk SET ordinal = ordinal + 10 WHERE collection_id = %(c)s", {"c": collection.id})
    assert _stats(db, collection.id) == before

    run(
        db,
        "DELETE FROM memora.document WHERE collection_id = %(c)s AND id IN (SELECT id FROM memora.document "
        "WHERE collection_id = %(c)s ORDER BY id LIMIT 5)",
        {"c": collection.id},
    )
    assert _stats(db, collection.id) == _recount(db, collection.id)
    assert _stats(db, collection.id)[0][0] == 45

    run(db, "DELETE FROM memora.chunk WHERE collection_id = %(c)s", {"c": collection.id})
    assert _stats(db, collection.id) == ((0, 0), {})


def test_deleting_a_collection_deletes_its_statistics(db: Session) -> None:
    collection = corpus(db, chunks=30)
    other = corpus(db, chunks=30, seed=8)
    other_stats = _stats(db, other.id)

    run(db, "DELETE FROM memora.collection WHERE id = %(c)s", {"c": collection.id})

    assert _stats(db, collection.id) == (None, {})
    assert _stats(db, other.id) == other_stats


def test_refresh_recounts_statistics(db: Session) -> None:
    collection = corpus(db, chunks=30)
    run(db, "UPDATE memora.term_stats SET df = 999 WHERE collection_id = %(c)s", {"c": collection.id})

    run(db, "SELECT memora.refresh_text_stats(%(c)s)", {"c": collection.id})

    assert _stats(db, collection.id) == _recount(db, collection.id)


# BM25 search


@pytest.mark.parametrize("k", [10, 40])
# The setting is named after the schema, as the function that reads it is (memora.bm25_first_pass in schema memora).
@pytest.mark.parametrize("first_pass", ["", "1"])
def test_search_text_is_exact_bm25(db: Session, first_pass: str, k: int) -> None:
    collection = corpus(db)
    # "1" makes every query read only its rarest terms first (as few as give k chunks), so the pruned second pass
    # decides the result.
    db.execute(text("SELECT set_config(:name, :v, true)"), {"name": q("memora.bm25_first_pass"), "v": first_pass})
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
        matched = run(db,
                "SELECT coalesce(array_to_tsvector(CAST(s AS text[])) "
                "@@ memora.bm25_bound_query(%(lexemes)s, %(bounds)s, %(threshold)s, %(depth)s), false) "
                "FROM unnest(CAST(%(subsets)s AS text[])) WITH ORDINALITY u (s, i) ORDER BY i"
            ,
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
    collection = corpus(db)
    run(db, "UPDATE memora.collection SET bm25_k1 = 2.0, bm25_b = 1.0 WHERE id = %(c)s", {"c": collection.id})

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
    collection = corpus(db, chunks=9)
    assert _search_text(db, collection, "the and of", 10) == []


def test_search_text_filters(db: Session) -> None:
    collection = corpus(db)

    found = _search_text(db, collection, "w0x w1x", 20, filter={"bucket": 3})

    assert len(found) == 20
    buckets = run(
        db,
        "SELECT DISTINCT d.metadata->'bucket' FROM memora.chunk c JOIN memora.document d "
        "ON d.collection_id = c.collection_id AND d.id = c.document_id WHERE c.id = ANY(%(ids)s)",
        {"ids": [chunk for chunk, _ in found]},
    ).scalars()
    assert list(buckets) == [3]
