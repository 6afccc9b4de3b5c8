"""What a collection keeps for search, through the REST API: its BM25 parameters and statistics (kept up to date by
every write path), and the hybrid defaults `memora eval --tune --save` stores."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection

from app.api.main import create_app
from app.config import Settings
from app.db.engine import make_engine
from app.db.query import Query
from app.ingest.worker import Worker
from tests.integration.search.corpus import CORPUS, QUERY, document, search, store_corpus

STORED_STATISTICS = Query(
    "SELECT chunks, total_length FROM memora.text_stats "
    "WHERE collection_id = (SELECT id FROM memora.collection WHERE name = %(name)s)"
)
STORED_TERMS = Query(
    "SELECT lexeme, df FROM memora.term_stats "
    "WHERE collection_id = (SELECT id FROM memora.collection WHERE name = %(name)s)"
)
_CHUNKS = "memora.chunk c JOIN memora.collection col ON col.id = c.collection_id AND col.name = %(name)s"
COUNTED_STATISTICS = Query(f"SELECT count(*), sum(length(c.tsv)) FROM {_CHUNKS}")
COUNTED_TERMS = Query(f"SELECT u.lexeme, count(*) FROM {_CHUNKS}, unnest(c.tsv) u GROUP BY u.lexeme")
STORED_POSTINGS = Query(
    "SELECT p.chunk_id, p.lexeme, p.tf, p.len FROM memora.posting p "
    "WHERE p.collection_id = (SELECT id FROM memora.collection WHERE name = %(name)s) ORDER BY 1, 2"
)
COUNTED_POSTINGS = Query(
    f"SELECT c.id, u.lexeme, coalesce(cardinality(u.positions), 1), length(c.tsv) FROM {_CHUNKS}, unnest(c.tsv) u "
    "ORDER BY 1, 2"
)
STATS_ROWS = Query("SELECT count(*) FROM memora.text_stats")
TERM_ROWS = Query("SELECT count(*) FROM memora.term_stats")
SAVE_DEFAULTS = Query(
    "UPDATE memora.collection SET metadata = jsonb_build_object('search_defaults', %(defaults)s::jsonb)"
)


@pytest.fixture(autouse=True)
def corpus(api: TestClient) -> None:
    store_corpus(api)


def test_bm25_parameters_of_the_collection_are_used(api: TestClient) -> None:
    before = search(api, query="aardvark", mode="text")["results"]
    assert api.patch("/v1/collections/kb", json={"bm25_k1": 0}).status_code == 200
    after = search(api, query="aardvark", mode="text")["results"]

    # k1 = 0: a term counts once however often it occurs, so the two matches tie on idf alone.
    assert before[0]["score"] > before[1]["score"]
    assert after[0]["score"] == pytest.approx(after[1]["score"])


# BM25 statistics through the API's write paths: given chunks, the worker's (re-)chunking, deletes.


def text_statistics(conn: Connection, name: str) -> tuple[Any, dict[str, int], list[Any]]:
    """The collection's stored BM25 statistics: (chunks, total_length), each lexeme's document frequency, and its
    postings (chunk, lexeme, tf, length)."""
    stored = STORED_STATISTICS.run(conn, {"name": name}).one_or_none()
    terms = STORED_TERMS.run(conn, {"name": name})
    postings = [tuple(row) for row in STORED_POSTINGS.run(conn, {"name": name})]
    return (tuple(stored) if stored and stored[0] else None), {lexeme: df for lexeme, df in terms}, postings


def recounted(conn: Connection, name: str) -> tuple[Any, dict[str, int], list[Any]]:
    """The same statistics and postings, counted from the collection's chunks."""
    totals = COUNTED_STATISTICS.run(conn, {"name": name}).one()
    terms = COUNTED_TERMS.run(conn, {"name": name})
    postings = [tuple(row) for row in COUNTED_POSTINGS.run(conn, {"name": name})]
    return (tuple(totals) if totals[0] else None), {lexeme: df for lexeme, df in terms}, postings


def test_statistics_follow_given_chunks_edits_and_deletes(api: TestClient, connection: Connection) -> None:
    assert text_statistics(connection, "kb") == recounted(connection, "kb")
    assert text_statistics(connection, "kb")[0][0] == len(CORPUS)

    edited = CORPUS[1] | {"content": "An aardvark is a burrowing nocturnal mammal of Africa."}
    updated = api.post("/v1/collections/kb/documents", json=document(edited)).json()["documents"][0]
    Query("UPDATE memora.chunk SET text = text || ' brandnewterm' WHERE char_start = 0").run(connection)
    assert api.delete("/v1/collections/kb/documents/neither").status_code == 204
    after_edits = text_statistics(connection, "kb")

    assert updated["action"] == "updated"
    assert after_edits == recounted(connection, "kb")
    assert after_edits[0][0] == len(CORPUS) - 1
    assert after_edits[1]["brandnewterm"] == len(CORPUS) - 1
    assert after_edits[1]["burrow"] == 1
    assert "market" not in after_edits[1]
    assert api.delete("/v1/collections/kb").status_code == 204
    assert STATS_ROWS.run(connection).scalar() == TERM_ROWS.run(connection).scalar() == 0


PARAGRAPHS = [f"Paragraph {i} is about burrowing animal number {i} and its habits." for i in range(8)]


def test_statistics_follow_the_workers_chunking(fresh_db_url: str) -> None:
    settings = Settings(database_url=fresh_db_url)
    engine = make_engine(settings, "api")
    worker = Worker(settings, engine)
    collection = {"name": "wk", "embedding_provider": "hashing", "chunking": {"size": 24, "overlap": 0}}

    def drain() -> None:
        while worker.run_once():
            pass

    def check() -> tuple[Any, dict[str, int]]:
        with engine.connect() as conn:
            stored = text_statistics(conn, "wk")
            assert stored == recounted(conn, "wk")
            return stored

    try:
        with TestClient(create_app(settings, engine=engine)) as api:
            assert api.post("/v1/collections", json=collection).status_code == 201
            docs = [{"external_id": f"d{i}", "content": "\n\n".join(PARAGRAPHS[i:])} for i in range(3)]
            api.post("/v1/collections/wk/documents", json=docs)
            drain()
            first = check()
            edited = [*PARAGRAPHS[:3], "A middle paragraph replaced by something on pangolins.", *PARAGRAPHS[4:]]
            api.post("/v1/collections/wk/documents", json={"external_id": "d0", "content": "\n\n".join(edited)})
            drain()
            after_edit = check()
            api.delete("/v1/collections/wk/documents/d1")
            after_delete = check()
            api.patch("/v1/collections/wk", json={"chunking": {"size": 48, "overlap": 8}})
            drain()
            rechunked = check()
            api.patch("/v1/collections/wk", json={"language": "simple"})
            relanguaged = check()
            found = api.post("/v1/collections/wk/search", json={"query": "pangolins", "mode": "text"}).json()
            api.delete("/v1/collections/wk")
            with engine.connect() as conn:
                left = [count.run(conn).scalar() for count in (STATS_ROWS, TERM_ROWS)]
    finally:
        engine.dispose()

    assert first[0][0] > 3
    assert "pangolin" not in first[1]
    assert "pangolin" in after_edit[1]
    assert after_delete[0][0] < after_edit[0][0]
    assert rechunked[0][0] < after_delete[0][0]
    assert "pangolins" in relanguaged[1]  # the simple configuration does not stem
    assert "pangolin" not in relanguaged[1]
    assert {result["external_id"] for result in found["results"]} == {"d0"}
    assert left == [0, 0]


def test_hybrid_takes_the_collections_saved_defaults_for_what_a_request_leaves_unset(
    api: TestClient, connection: Connection
) -> None:
    saved = '{"fusion": "rrf", "rrf_k": 10, "weights": {"text": 1, "vector": 1}, "candidates_factor": 4}'
    SAVE_DEFAULTS.run(connection, {"defaults": saved})

    tuned = search(api, query="aardvark", embedding=QUERY)
    explicit = search(api, query="aardvark", embedding=QUERY, fusion="convex")

    first = tuned["results"][0]
    ranks = [first["scores"][side]["rank"] for side in ("text", "vector") if first["scores"].get(side)]
    assert first["score"] == pytest.approx(sum(1 / (10 + rank) for rank in ranks))
    assert explicit["results"][0]["scores"]["fused"] <= 2.0  # convex: at most the sum of the weights
    assert explicit["results"][0]["score"] != pytest.approx(first["score"])


def test_saved_defaults_apply_when_the_query_is_embedded_too(api: TestClient, connection: Connection) -> None:
    SAVE_DEFAULTS.run(connection, {"defaults": '{"fusion": "rrf", "rrf_k": 10}'})

    first = search(api, query="aardvark")["results"][0]

    ranks = [first["scores"][side]["rank"] for side in ("text", "vector") if first["scores"].get(side)]
    assert first["score"] == pytest.approx(sum(1 / (10 + rank) for rank in ranks))
