"""BM25 in sql/idempotent/: the statistics and postings its triggers keep, and search_text's scores, exact against BM25
computed here from the chunks' tsvectors."""

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


def _postings(db: Session, collection_id: int) -> tuple[list[Any], list[Any]]:
    """The postings the triggers keep, and those the chunks have now, as sorted rows."""
    kept = run(
        db,
        "SELECT chunk_id, lexeme, tf, len FROM memora.posting WHERE collection_id = %(c)s ORDER BY 1, 2",
        {"c": collection_id},
    ).all()
    recount = run(
        db,
        "SELECT c.id, u.lexeme, coalesce(cardinality(u.positions), 1), length(c.tsv) "
        "FROM memora.chunk c, unnest(c.tsv) u WHERE c.collection_id = %(c)s ORDER BY 1, 2",
        {"c": collection_id},
    ).all()
    return [tuple(r) for r in kept], [tuple(r) for r in recount]


def _assert_postings_exact(db: Session, collection_id: int) -> None:
    kept, recount = _postings(db, collection_id)
    assert kept == recount


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


def test_statistics_and_postings_follow_inserts_updates_and_deletes(db: Session) -> None:
    collection = corpus(db, chunks=60)
    assert _stats(db, collection.id) == _recount(db, collection.id)
    _assert_postings_exact(db, collection.id)
    assert _stats(db, collection.id)[0] == (60, _recount(db, collection.id)[0][1])

    run(
        db,
        "UPDATE memora.chunk SET text = text || ' brandnewterm' WHERE collection_id = %(c)s AND ordinal = 0",
        {"c": collection.id},
    )
    assert _stats(db, collection.id) == _recount(db, collection.id)
    _assert_postings_exact(db, collection.id)
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
    _assert_postings_exact(db, collection.id)
    assert _stats(db, collection.id)[0][0] == 45

    run(db, "DELETE FROM memora.chunk WHERE collection_id = %(c)s", {"c": collection.id})
    assert _stats(db, collection.id) == ((0, 0), {})
    assert _postings(db, collection.id) == ([], [])


def test_deleting_a_collection_deletes_its_statistics_and_postings(db: Session) -> None:
    collection = corpus(db, chunks=30)
    other = corpus(db, chunks=30, seed=8)
    other_stats = _stats(db, other.id)

    run(db, "DELETE FROM memora.collection WHERE id = %(c)s", {"c": collection.id})

    assert _stats(db, collection.id) == (None, {})
    assert _postings(db, collection.id)[0] == []
    assert _stats(db, other.id) == other_stats
    _assert_postings_exact(db, other.id)


def test_refresh_recounts_statistics_and_postings(db: Session) -> None:
    collection = corpus(db, chunks=30)
    run(db, "UPDATE memora.term_stats SET df = 999 WHERE collection_id = %(c)s", {"c": collection.id})

    run(db, "UPDATE memora.posting SET tf = 99 WHERE collection_id = %(c)s AND lexeme = 'w0x'", {"c": collection.id})
    run(db, "DELETE FROM memora.posting WHERE collection_id = %(c)s AND lexeme = 'w1x'", {"c": collection.id})

    run(db, "SELECT memora.refresh_text_stats(%(c)s)", {"c": collection.id})
    run(db, "SELECT memora.refresh_postings(%(c)s)", {"c": collection.id})

    assert _stats(db, collection.id) == _recount(db, collection.id)
    _assert_postings_exact(db, collection.id)


# BM25 search


def _set(db: Session, setting: str, value: str) -> None:
    # Settings are named after the schema, as the function that reads them is (memora.bm25_exhaustive in memora).
    db.execute(text("SELECT set_config(:name, :v, true)"), {"name": q(setting), "v": value})


# How memora.bm25_candidates runs: every posting read (the default on this small corpus), MaxScore pruning, and
# pruning whose first bar comes from the rarest term alone.
PLANS = {"exhaustive": ("", ""), "pruned": ("0", ""), "pruned-from-one-term": ("0", "1")}


@pytest.mark.parametrize("k", [10, 40])
@pytest.mark.parametrize("plan", PLANS)
def test_search_text_is_exact_bm25(db: Session, plan: str, k: int) -> None:
    collection = corpus(db)
    exhaustive, first_pass = PLANS[plan]
    _set(db, "memora.bm25_exhaustive", exhaustive)
    _set(db, "memora.bm25_first_pass", first_pass)
    rng = random.Random(11)
    queries = [" ".join(rng.sample(WORDS[:60], rng.randint(3, 8))) for _ in range(25)]
    queries += ["w0x w1x w2x", "w0x w399x", "w398x", "w1x w1x w5x"]
    queries += [" ".join(rng.sample(WORDS[:300], n)) for n in (15, 30, 45)]

    for query in queries:
        expected = _bm25(db, collection, query)[:k]
        found = _search_text(db, collection, query, k)
        assert [score for _, score in found] == pytest.approx([score for _, score in expected], rel=1e-6), query
        assert {chunk for chunk, _ in found} == {chunk for chunk, _ in expected}, query


@pytest.mark.parametrize("plan", PLANS)
def test_equal_scores_are_ordered_by_chunk_id_whatever_the_plan(db: Session, plan: str) -> None:
    # Chunks of the same text score the same, but summed over the terms in another order two equal scores can
    # differ in their last bit; scores are rounded to 1e-9 so that chunk ids break every tie.
    exhaustive, first_pass = PLANS[plan]
    _set(db, "memora.bm25_exhaustive", exhaustive)
    _set(db, "memora.bm25_first_pass", first_pass)
    collection = corpus(db, chunks=90)
    document = make_document(db, collection, title="")
    twin = "w3x w7x w7x w11x w19x w23x w23x w23x w40x w41x w42x w43x w44x w45x"
    for ordinal in range(6):
        make_chunk(db, document, ordinal=ordinal, title="", text=twin)
    twins = run(db, "SELECT id FROM memora.chunk WHERE document_id = %(d)s ORDER BY id", {"d": document.id}).scalars()

    found = _search_text(db, collection, "w3x w7x w11x w19x w23x w40x w41x w42x w43x w44x w45x", 10)

    assert [chunk for chunk, _ in found[:6]] == list(twins)
    assert len({score for _, score in found[:6]}) == 1


def test_search_text_counts_every_term_frequency_a_tsvector_holds(db: Session) -> None:
    # A tsvector holds up to 255 positions of a lexeme; the posting keeps their number, beyond a tf ts_rank can tell.
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
