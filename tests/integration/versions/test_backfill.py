"""The backfill of a new embedding version by the worker (app/versions/backfill.py), against a real database: every
chunk gets the version's vector, chunks added later too, and the version is marked ready."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Engine

from app.config import Settings
from app.db.engine import make_engine
from app.db.query import Query
from app.embeddings.registry import get_embedder
from app.ingest.pipeline import embedding_input
from app.ingest.worker import Worker

COLLECTION = Query(
    "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions) "
    "VALUES ('docs', 'hashing', 'hashing', 16)"
)
ADD = Query(
    "INSERT INTO memora.document (collection_id, external_id, content) "
    "SELECT id, %(external_id)s, %(content)s FROM memora.collection WHERE name = 'docs'"
)
ADD_VERSION = Query(
    "INSERT INTO memora.embedding_version (collection_id, number, embedding_provider, embedding_model, dimensions, "
    "metric, storage, hnsw_m, hnsw_ef_construction) "
    "SELECT id, 2, %(provider)s, %(model)s, 8, 'l2', 'vector', 16, 64 FROM memora.collection WHERE name = 'docs'"
)
VERSION = Query("SELECT status, error, leased_by FROM memora.embedding_version WHERE number = 2")
VECTORS = Query("""
SELECT ch.title, ch.text, e.embedding
FROM memora.embedding e JOIN memora.chunk ch ON ch.collection_id = e.collection_id AND ch.id = e.chunk_id
WHERE e.version = %(v)s ORDER BY ch.id
""")
CHUNKS = Query("SELECT count(*) FROM memora.chunk")


@pytest.fixture
def settings(fresh_db_url: str) -> Settings:
    return Settings(database_url=fresh_db_url, worker_retry_seconds=60, worker_poll_seconds=30, openai_api_key=None)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings, "backfill-test")
    with engine.begin() as conn:
        COLLECTION.run(conn)
    yield engine
    engine.dispose()


def add(engine: Engine, external_id: str, content: str) -> None:
    with engine.begin() as conn:
        ADD.run(conn, {"external_id": external_id, "content": content})


def drain(settings: Settings, engine: Engine) -> Worker:
    """A worker run until no document waits and no version lacks vectors."""
    worker = Worker(settings, engine)
    worker.run(threading.Event(), until_empty=True)
    return worker


def version_2(engine: Engine) -> tuple[str, str | None, str | None]:
    with engine.connect() as conn:
        status, error, leased_by = VERSION.run(conn).one()
    return status, error, leased_by


def vectors(engine: Engine, version: int) -> list[tuple[str, np.ndarray]]:
    with engine.connect() as conn:
        rows = VECTORS.run(conn, {"v": version})
        return [(embedding_input(title, text), np.asarray(v.to_list())) for title, text, v in rows]


def test_a_new_version_gets_a_vector_for_every_chunk_and_is_ready(settings: Settings, engine: Engine) -> None:
    for i in range(5):
        add(engine, f"doc-{i}", f"Document {i} says something of its own about topic {i}.")
    drain(settings, engine)
    with engine.begin() as conn:
        ADD_VERSION.run(conn, {"provider": "hashing", "model": "hashing"})
    building = version_2(engine)

    worker = drain(settings, engine)

    with engine.connect() as conn:
        chunks = CHUNKS.run(conn).scalar()
    stored = vectors(engine, 2)
    embedder = get_embedder("hashing", "hashing", 8, settings)
    assert building[0] == "building"
    assert version_2(engine) == ("ready", None, None)
    assert len(stored) == chunks == len(vectors(engine, 1)) == 5
    assert worker.backfill.vectors == 5
    for text, vector in stored:
        assert vector.shape == (8,)
        assert np.allclose(vector, embedder.embed([text])[0], atol=1e-6)


def test_chunks_added_after_the_backfill_get_the_version_s_vectors_too(settings: Settings, engine: Engine) -> None:
    add(engine, "first", "The first document.")
    drain(settings, engine)
    with engine.begin() as conn:
        ADD_VERSION.run(conn, {"provider": "hashing", "model": "hashing"})
    drain(settings, engine)

    add(engine, "second", "A second document, added once version 2 was ready.")
    drain(settings, engine)

    assert version_2(engine)[0] == "ready"
    assert [text for text, _ in vectors(engine, 2)] == [text for text, _ in vectors(engine, 1)]
    assert len(vectors(engine, 2)) == 2


def test_a_version_whose_model_refuses_for_good_fails_with_the_reason(settings: Settings, engine: Engine) -> None:
    add(engine, "doc", "Some text.")
    drain(settings, engine)
    with engine.begin() as conn:
        ADD_VERSION.run(conn, {"provider": "openai", "model": "text-embedding-3-small"})

    worker = Worker(settings, engine)
    done = worker.backfill.run_once()

    status, error, leased_by = version_2(engine)
    assert not done
    assert status == "failed"  # no API key: waiting would not help
    assert error is not None
    assert "key" in error.lower()
    assert leased_by is None
    assert vectors(engine, 2) == []


def test_a_version_of_the_same_model_copies_its_vectors_rather_than_embed_them(
    settings: Settings, engine: Engine
) -> None:
    add(engine, "doc", "A document whose version 1 vector is not what the model makes of it.")
    drain(settings, engine)
    with engine.begin() as conn:  # a vector only a copy can have
        Query("UPDATE memora.embedding SET embedding = array_fill(0.25, ARRAY[16])::vector").run(conn)
        ADD_SAME_MODEL.run(conn)

    worker = drain(settings, engine)

    assert version_2(engine)[0] == "ready"
    assert worker.backfill.vectors == 1
    ((_, copied),) = vectors(engine, 2)
    assert np.allclose(copied, np.full(16, 0.25))


def test_the_worker_leaves_a_version_for_an_import_to_its_client(settings: Settings, engine: Engine) -> None:
    add(engine, "doc", "Some text.")
    drain(settings, engine)
    with engine.begin() as conn:
        ADD_SAME_MODEL.run(conn)
        Query("UPDATE memora.embedding_version SET source = 'import' WHERE number = 2").run(conn)

    worker = drain(settings, engine)

    assert version_2(engine)[0] == "building"
    assert worker.backfill.vectors == 0
    assert vectors(engine, 2) == []


ADD_SAME_MODEL = Query(
    "INSERT INTO memora.embedding_version (collection_id, number, embedding_provider, embedding_model, dimensions, "
    "metric, storage, hnsw_m, hnsw_ef_construction) "
    "SELECT id, 2, 'hashing', 'hashing', 16, 'inner_product', 'vector', 16, 64 "
    "FROM memora.collection WHERE name = 'docs'"
)
