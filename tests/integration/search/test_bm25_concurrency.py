"""BM25's statistics and postings under concurrent writers: several connections insert, edit and delete chunks of
one collection at once, each in transactions of its own, some rolled back; afterwards what the triggers kept equals
a recount from the chunks, and search_text, run while they write, returns BM25 exactly as of its snapshot."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from tests.integration.search.sql_support import WORDS, zipf_text
from tests.schema import q

WRITERS = 4
ROUNDS = 30
DEADLOCK_RETRIES = 5

POSTINGS = q("SELECT chunk_id, lexeme, tf, len FROM memora.posting WHERE collection_id = %(c)s ORDER BY 1, 2")
COUNTED_POSTINGS = q(
    "SELECT c.id, u.lexeme, coalesce(cardinality(u.positions), 1), length(c.tsv) "
    "FROM memora.chunk c, unnest(c.tsv) u WHERE c.collection_id = %(c)s ORDER BY 1, 2"
)
STATS = q(
    "SELECT (SELECT row(chunks, total_length)::text FROM memora.text_stats WHERE collection_id = %(c)s), "
    "(SELECT array_agg(row(lexeme, df)::text ORDER BY lexeme) FROM memora.term_stats WHERE collection_id = %(c)s)"
)
COUNTED_STATS = q(
    "SELECT (SELECT row(count(*), sum(length(tsv)))::text FROM memora.chunk WHERE collection_id = %(c)s), "
    "(SELECT array_agg(row(lexeme, n)::text ORDER BY lexeme) FROM (SELECT u.lexeme, count(*) AS n "
    "FROM memora.chunk c, unnest(c.tsv) u WHERE c.collection_id = %(c)s GROUP BY u.lexeme) t)"
)
# BM25 of every chunk, computed from the tsvectors in the same snapshot as the search it is compared with; scores
# rounded to 1e-9 and ties ordered by chunk id, as memora.bm25_candidates does (chunks of equal text tie).
REFERENCE = q("""
    WITH s AS (SELECT count(*)::float8 AS n, avg(length(tsv))::float8 AS avglen
               FROM memora.chunk WHERE collection_id = %(c)s),
    df AS (SELECT u.lexeme, count(*)::float8 AS df FROM memora.chunk c, unnest(c.tsv) u
           WHERE c.collection_id = %(c)s AND u.lexeme = ANY (memora.search_terms('english', %(q)s)) GROUP BY 1)
    SELECT c.id, round(sum(ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5)) * cardinality(u.positions) * 1.9
                           / (cardinality(u.positions) + 0.9 * (1 - 0.4 + 0.4 * length(c.tsv) / s.avglen))) * 1e9)
                 / 1e9 AS score
    FROM memora.chunk c CROSS JOIN s, unnest(c.tsv) u JOIN df ON df.lexeme = u.lexeme
    WHERE c.collection_id = %(c)s
    GROUP BY c.id ORDER BY 2 DESC, 1 LIMIT 10""")
SEARCH = q("SELECT chunk_id, score FROM memora.search_text(%(name)s, %(q)s, 10)")


NEW_COLLECTION = q(
    "INSERT INTO memora.collection (name, embedding_model, dimensions) VALUES ('busy', 'm', 3) RETURNING id, name"
)
NEW_DOCUMENT = q(
    "INSERT INTO memora.document (collection_id, external_id, title, content) VALUES (%s, %s, '', 'x') RETURNING id"
)
NEW_CHUNK = q(
    "INSERT INTO memora.chunk (collection_id, document_id, ordinal, char_start, char_end, content_hash, title, "
    "language, text) VALUES (%s, %s, %s, 0, 1, %s, '', 'english', %s)"
)


def _collection(url: str) -> tuple[int, str, list[int]]:
    with psycopg.connect(url, autocommit=True) as conn:
        collection_id, name = conn.execute(NEW_COLLECTION).fetchone() or (0, "")
        documents = []
        for i in range(WRITERS * 2):
            (document,) = conn.execute(NEW_DOCUMENT, (collection_id, f"d{i}")).fetchone() or (0,)
            documents.append(document)
    return collection_id, name, documents


def _write(url: str, collection_id: int, documents: list[int], seed: int) -> int:
    """Insert, edit and delete chunks of DOCUMENTS at random, a transaction a round; every fifth rolled back. A round
    that PostgreSQL aborts as a deadlock is run again, as any client of PostgreSQL must: each statement's triggers
    lock the lexemes' statistics in key order, but two transactions of several statements each (executemany inserts
    a row a statement) can still meet in opposite orders."""
    rng = random.Random(seed)
    writes = 0
    with psycopg.connect(url) as conn:
        for round_ in range(ROUNDS):
            for attempt in range(DEADLOCK_RETRIES):
                try:
                    _round(conn, rng, collection_id, documents, seed, round_)
                    break
                except psycopg.errors.DeadlockDetected:
                    if attempt == DEADLOCK_RETRIES - 1:
                        raise
            writes += 1
    return writes


def _round(
    conn: psycopg.Connection[Any], rng: random.Random, collection_id: int, documents: list[int], seed: int, round_: int
) -> None:
    document = rng.choice(documents)
    with conn.transaction(force_rollback=round_ % 5 == 4):
        ids = [row[0] for row in conn.execute(
            q("SELECT id FROM memora.chunk WHERE document_id = %s ORDER BY id"), (document,))]  # fmt: skip
        action = rng.choice(["insert", "insert", "update", "delete"] if ids else ["insert"])
        if action == "insert":
            start = seed * 10**6 + round_ * 10  # ordinals no other writer or round takes
            rows = [(collection_id, document, start + n, rng.randbytes(32), zipf_text(rng, rng.randint(3, 40)))
                    for n in range(rng.randint(1, 6))]  # fmt: skip
            with conn.cursor() as cursor:
                cursor.executemany(NEW_CHUNK, rows)
        elif action == "update":
            conn.execute(q("UPDATE memora.chunk SET text = %s WHERE id = ANY(%s)"),
                         (zipf_text(rng, rng.randint(3, 40)), rng.sample(ids, min(len(ids), 3))))  # fmt: skip
        else:
            conn.execute(q("DELETE FROM memora.chunk WHERE id = ANY(%s)"), (rng.sample(ids, min(len(ids), 2)),))


def _search_while(url: str, collection_id: int, name: str, stop: threading.Event) -> list[tuple[Any, Any]]:
    """search_text and the reference, each pair in one snapshot (REPEATABLE READ), until STOP."""
    rng = random.Random(5)
    pairs = []
    with psycopg.connect(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        while not stop.is_set() or len(pairs) < 5:
            query = " ".join(rng.sample(WORDS[:80], rng.randint(2, 12)))
            with conn.transaction():
                found = conn.execute(SEARCH, {"name": name, "q": query}).fetchall()
                expected = conn.execute(REFERENCE, {"c": collection_id, "q": query}).fetchall()
            pairs.append((found, expected))
    return pairs


def test_statistics_postings_and_search_stay_exact_under_concurrent_writers(fresh_db_url: str) -> None:
    collection_id, name, documents = _collection(fresh_db_url)
    stop = threading.Event()
    with ThreadPoolExecutor(WRITERS + 1) as pool:
        searching = pool.submit(_search_while, fresh_db_url, collection_id, name, stop)
        try:
            writers = [pool.submit(_write, fresh_db_url, collection_id, documents, seed) for seed in range(WRITERS)]
            assert sum(w.result(timeout=300) for w in writers) == WRITERS * ROUNDS
        finally:
            stop.set()
        pairs = searching.result(timeout=300)

    with psycopg.connect(fresh_db_url) as conn:
        parameters = {"c": collection_id}
        assert conn.execute(STATS, parameters).fetchone() == conn.execute(COUNTED_STATS, parameters).fetchone()
        postings = conn.execute(POSTINGS, parameters).fetchall()
        assert postings == conn.execute(COUNTED_POSTINGS, parameters).fetchall()
        assert postings  # the writers left chunks
    assert sum(1 for found, _ in pairs if found) >= 5  # searches that found something, while the writers wrote
    for found, expected in pairs:
        assert [chunk for chunk, _ in found] == [chunk for chunk, _ in expected]
        for (_, score), (_, reference) in zip(found, expected, strict=True):
            assert abs(score - reference) <= 1e-6 * reference
