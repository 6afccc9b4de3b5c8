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
from tests.schema import q

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
        Query("UPDATE memora.document SET status = 'failed', error = 'x' WHERE external_id IN ('d1', 'd2')").run(conn)
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
        Query("UPDATE memora.document SET status = 'ready' WHERE external_id LIKE 'd1%%'").run(conn, {})
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
    plan = (
        Query(
            "EXPLAIN SELECT id FROM memora.document WHERE collection_id = 1 AND status = 'failed' AND id > 0 "
            "ORDER BY id LIMIT 51"
        )
        .run(db)
        .scalars()
    )

    assert "ix_document_status" in "\n".join(plan)


def test_moving_documents_between_collections_or_truncating_keeps_the_counts_true(
    api: TestClient, engine: Engine
) -> None:
    api.post("/v1/collections/kb/documents", json=[{"external_id": f"d{i}", "content": f"Text {i}."} for i in range(5)])
    with engine.begin() as conn:
        Query(
            "UPDATE memora.document SET collection_id = (SELECT id FROM memora.collection WHERE name = 'other'), "
            "status = 'failed' WHERE external_id IN ('d0', 'd1')").run(conn)  # fmt: skip
    assert counted(engine) == truth(engine) == {"pending": 3}
    assert counted(engine, "other") == truth(engine, "other") == {"failed": 2}

    with engine.begin() as conn:
        Query("TRUNCATE memora.document CASCADE").run(conn)
    assert counted(engine) == counted(engine, "other") == {}


def test_moving_a_document_does_not_wait_for_a_locked_collection(api: TestClient, engine: Engine) -> None:
    """A claim or a status change takes no lock on the collection's row (the counts have no foreign key to it), so
    it never waits for, nor deadlocks with, a change of the collection that locks its row and then its documents."""
    api.post("/v1/collections/kb/documents", json={"external_id": "a", "content": "Alpha."})
    with engine.connect() as holder, engine.connect() as mover:
        Query("SELECT 1 FROM memora.collection WHERE name = 'kb' FOR UPDATE").run(holder)
        mover.execute(text("SET lock_timeout = '2s'"))
        Query("UPDATE memora.document SET status = 'processing' WHERE external_id = 'a'").run(mover)
        mover.commit()
        holder.rollback()
    assert counted(engine) == truth(engine) == {"processing": 1}


def test_only_memora_may_run_the_count_triggers_functions(engine: Engine) -> None:
    with engine.connect() as conn:
        public = (
            Query(
                "SELECT has_function_privilege('public', 'memora.document_count_changes()', 'EXECUTE'), "
                "has_function_privilege('public', 'memora.collection_counts_gone()', 'EXECUTE')"
            )
            .run(conn)
            .one()
        )
        conn.execute(text("CREATE TEMP TABLE t (collection_id bigint, status text)"))
        Query(
            "CREATE TRIGGER forged AFTER INSERT ON t REFERENCING NEW TABLE AS new_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION memora.document_count_changes()").run(conn)  # fmt: skip
        with pytest.raises(Exception, match=r"counts \w+\.document only"):
            conn.execute(text("INSERT INTO t VALUES (1, 'ready')"))

    assert tuple(public) == (False, False)


def test_a_citus_shard_of_the_documents_is_counted_and_a_look_alike_elsewhere_is_not(connection: Connection) -> None:
    """Under Citus the triggers fire on shards (memora.document_102008): tables of Memora's schema named after the
    documents with a shard id. A temporary table of that name is not one."""
    shard_of = Query("SELECT memora.is_shard_of(%(r)s::regclass, 'memora.document')")
    Query("CREATE TABLE memora.document_102008 (LIKE memora.document)").run(connection)
    connection.execute(text("CREATE TEMP TABLE document_102009 (id bigint)"))
    Query("CREATE TABLE memora.document_10x (id bigint)").run(connection)

    assert shard_of.run(connection, {"r": q("memora.document_102008")}).scalar_one() is True
    assert shard_of.run(connection, {"r": "pg_temp.document_102009"}).scalar_one() is False
    assert shard_of.run(connection, {"r": q("memora.document_10x")}).scalar_one() is False
    assert shard_of.run(connection, {"r": q("memora.chunk")}).scalar_one() is False
