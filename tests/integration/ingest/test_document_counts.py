"""Documents by status without counting them (migration 0011, sql/idempotent/015-document-counts.sql): the counts the
triggers append agree with the documents through every way a document comes, changes status and goes; folding them
keeps them; and a page of one status reads that status's documents only."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.collections.repository import status_counts
from app.config import Settings
from app.db.engine import make_engine
from app.db.query import Query
from app.ingest import repository
from app.ingest.worker import Worker

TRUTH = Query("SELECT status, count(*) FROM memora.document WHERE collection_id = %(c)s GROUP BY status")
ROWS = Query("SELECT count(*) FROM memora.document_count WHERE collection_id = %(c)s")
COLLECTION = Query("SELECT id FROM memora.collection WHERE name = %(name)s")


@pytest.fixture
def settings(fresh_db_url: str) -> Settings:
    return Settings(database_url=fresh_db_url, worker_retry_seconds=0, worker_max_attempts=1)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings, "test")
    yield engine
    engine.dispose()


@pytest.fixture
def api(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine)) as client:
        for name in ("kb", "other"):
            client.post("/v1/collections", json={"name": name, "embedding_provider": "hashing", "dimensions": 8})
        yield client


def collection_id(conn: Connection, name: str = "kb") -> int:
    return int(COLLECTION.run(conn, {"name": name}).scalar_one())


def counted(engine: Engine, name: str = "kb") -> dict[str, int]:
    with engine.connect() as conn:
        cid = collection_id(conn, name)
        return status_counts(conn, [cid])[cid]


def truth(engine: Engine, name: str = "kb") -> dict[str, int]:
    with engine.connect() as conn:
        return {status: count for status, count in TRUTH.run(conn, {"c": collection_id(conn, name)})}


def test_counts_follow_documents_through_upload_work_failure_retry_edit_and_delete(
    api: TestClient, engine: Engine, settings: Settings
) -> None:
    docs = [{"external_id": f"d{i}", "content": f"Document number {i}."} for i in range(30)]
    api.post("/v1/collections/kb/documents", json=docs)
    api.post("/v1/collections/other/documents", json=docs[:4])
    assert counted(engine) == truth(engine) == {"pending": 30}

    worker = Worker(settings.model_copy(update={"worker_batch_size": 7}), engine)
    worker.run_once()
    assert counted(engine) == truth(engine) == {"pending": 23, "ready": 7}
    while worker.run_once():
        pass
    assert counted(engine) == truth(engine) == {"ready": 30}
    assert counted(engine, "other") == truth(engine, "other") == {"ready": 4}

    with engine.begin() as conn:
        conn.execute(
            text("UPDATE memora.document SET status = 'failed', error = 'x' WHERE external_id IN ('d1', 'd2')")
        )
    assert api.post("/v1/collections/kb/documents/retry", json={"external_ids": ["d1"]}).status_code == 200
    api.post("/v1/collections/kb/documents", json={"external_id": "d3", "content": "Changed."})
    api.delete("/v1/collections/kb/documents/d4")
    assert counted(engine) == truth(engine) == {"ready": 26, "failed": 1, "pending": 2}

    api.delete("/v1/collections/other")
    assert counted(engine) == truth(engine)


def test_folding_the_counts_keeps_them_and_leaves_a_row_per_status(api: TestClient, engine: Engine) -> None:
    for i in range(repository.COMPACT_ABOVE + 10):  # a statement each: a row each
        api.post("/v1/collections/kb/documents", json={"external_id": f"d{i}", "content": f"Text {i}."})
    with engine.begin() as conn:
        conn.execute(text("UPDATE memora.document SET status = 'ready' WHERE external_id LIKE 'd1%'"))
    before = counted(engine)

    with engine.begin() as conn:
        folded = repository.compact_counts(conn)
        rows = ROWS.run(conn, {"c": collection_id(conn)}).scalar_one()

    assert folded == repository.COMPACT_ABOVE + 10 + 2  # a row per upload, and the update's two
    assert rows == 2
    assert counted(engine) == before == truth(engine)


def test_one_folding_at_a_time_and_writers_never_wait_on_it(api: TestClient, engine: Engine) -> None:
    for i in range(3):
        api.post("/v1/collections/kb/documents", json={"external_id": f"d{i}", "content": f"Text {i}."})
    fold = Query("SELECT memora.compact_document_count(%(c)s)")
    with engine.connect() as conn:
        cid = collection_id(conn)
    with engine.connect() as first, engine.connect() as second:
        first.begin()
        assert fold.run(first, {"c": cid}).scalar_one() == 3
        second.begin()
        assert fold.run(second, {"c": cid}).scalar_one() == 0  # the other holds the collection's fold: skipped
        done = threading.Event()

        def upload() -> None:  # appends, so it does not wait for the open fold
            api.post("/v1/collections/kb/documents", json={"external_id": "late", "content": "Late."})
            done.set()

        threading.Thread(target=upload).start()
        assert done.wait(10)
        second.rollback()
        first.commit()
    assert counted(engine) == truth(engine) == {"pending": 4}


def test_a_page_of_failed_documents_reads_them_through_their_index(db: Session) -> None:
    plan = db.execute(
        text(
            "EXPLAIN SELECT id FROM memora.document WHERE collection_id = 1 AND status = 'failed' AND id > 0 "
            "ORDER BY id LIMIT 51"
        )
    ).scalars()

    assert "ix_document_status" in "\n".join(plan)
