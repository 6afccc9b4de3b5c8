"""People on SQL, as the login roles `memora db role create` makes: a reader reads and searches and writes nothing;
a writer adds documents (the worker chunks and embeds them) and examples (the triggers number and split them)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import sql_roles
from app.db.engine import make_engine
from app.ingest.worker import Worker

# Written as a psql user writes it (docs/sql.md): the schema is memora.
pytestmark = pytest.mark.memora_schema

VECTOR = "array_fill(0.25, ARRAY[16])::vector"
SETUP = """
INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions)
VALUES ('docs', 'hashing', 'hashing', 16);
INSERT INTO memora.document (collection_id, external_id, content)
SELECT id, 'fox', 'The quick brown fox jumps over the lazy dog. Foxes are clever.' FROM memora.collection;
INSERT INTO memora.dataset (name, task) VALUES ('sms', 'classification');
"""


def login(admin_url: str, kind: sql_roles.Kind) -> Iterator[str]:
    """A login role of KIND, made as `memora db role create` makes it; its libpq URL; dropped at the end."""
    name = f"person_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        sql_roles.create_login(conn, "memora", name, kind, password)
    yield make_url(admin_url).set(username=name, password=password).render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        sql_roles.drop_login(conn, "memora", name)


@pytest.fixture
def settings(fresh_db_url: str) -> Settings:
    return Settings(database_url=fresh_db_url, worker_poll_seconds=30)


@pytest.fixture
def worker(settings: Settings) -> Iterator[Worker]:
    engine = make_engine(settings, "worker")
    yield Worker(settings, engine)
    engine.dispose()


@pytest.fixture
def prepared(fresh_db_url: str) -> str:
    """FRESH_DB_URL with a collection, a queued document and a dataset, made by the superuser."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(SETUP)
    return fresh_db_url


@pytest.fixture
def reader(prepared: str, worker: Worker) -> Iterator[str]:
    assert worker.run_once() == 1
    yield from login(prepared, "reader")


@pytest.fixture
def writer(prepared: str) -> Iterator[str]:
    yield from login(prepared, "writer")


def refused(url: str, statement: str) -> str:
    """The error message STATEMENT gets as the role of URL; it must be a permission error."""
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as refusal:
        conn.execute(statement)
    return str(refusal.value)


def test_a_reader_selects_and_runs_every_search_function(reader: str) -> None:
    with psycopg.connect(reader) as conn:
        who = "SELECT current_user LIKE 'person_%', rolsuper FROM pg_roles WHERE rolname = current_user"
        assert conn.execute(who).fetchone() == (True, False)
        assert conn.execute("SELECT status FROM memora.document").fetchall() == [("ready",)]
        assert conn.execute("SELECT count(*) > 0 FROM memora.chunk").fetchone() == (True,)
        text = conn.execute("SELECT count(*) FROM memora.search_text('docs', 'fox', 5)").fetchone()
        vector = conn.execute(f"SELECT count(*) FROM memora.search_vector('docs', {VECTOR}, 5)").fetchone()
        hybrid = conn.execute(f"SELECT count(*) FROM memora.search_hybrid('docs', 'fox', {VECTOR}, 5)").fetchone()
        only_fox = """'{"document.external_id": "fox"}'"""
        filtered = conn.execute(
            f"SELECT count(*) FROM memora.search_hybrid('docs', 'fox', {VECTOR}, 5, {only_fox})"
        ).fetchone()
    assert (text, vector, hybrid, filtered) == ((1,), (1,), (1,), (1,))


def test_a_reader_diffs_two_snapshots(prepared: str, reader: str) -> None:
    add = "INSERT INTO memora.example (dataset_id, format, input, label) SELECT id, 'classification', %s, 'ham' "
    with psycopg.connect(prepared, autocommit=True) as conn:
        conn.execute(add + "FROM memora.dataset", ['{"text": "first"}'])
        conn.execute("SELECT memora.create_snapshot('sms', 'v1')")
        conn.execute(add + "FROM memora.dataset", ['{"text": "second"}'])
        conn.execute("SELECT memora.create_snapshot('sms', 'v2')")

    with psycopg.connect(reader) as conn:
        rows = conn.execute("SELECT change, split_before FROM memora.snapshot_diff_v1('sms', 'v1', 'v2')").fetchall()

    assert rows == [("added", None)]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO memora.document (collection_id, content) SELECT id, 'x' FROM memora.collection",
        "UPDATE memora.document SET title = 'x'",
        "DELETE FROM memora.document",
        "DELETE FROM memora.chunk",
        "INSERT INTO memora.example (dataset_id, format, input, label) SELECT id, 'classification', '{}', 'x' "
        "FROM memora.dataset",
        "INSERT INTO memora.collection (name, embedding_model, dimensions) VALUES ('mine', 'm', 3)",
        "TRUNCATE memora.embedding",
        "SELECT * FROM memora.api_key",
        "SELECT * FROM memora.audit_event",
    ],
)
def test_a_reader_writes_nothing_and_sees_no_keys(reader: str, statement: str) -> None:
    assert "permission denied for table" in refused(reader, statement)


@pytest.mark.parametrize(
    "call",
    [
        "memora.refresh_text_stats(1)",
        "memora.create_collection_index(1)",
        "memora.set_collection_vector_check(1)",
        "memora.create_example_index(1, 16, '{}')",
        "memora.drop_example_index(1)",
        "memora.create_snapshot('sms', 'v1')",
        "memora.apply_text_stats('{}', '{}')",
    ],
)
def test_neither_reader_nor_writer_may_call_an_admin_function(reader: str, writer: str, call: str) -> None:
    for url in (reader, writer):
        assert "permission denied for function" in refused(url, f"SELECT {call}")


def test_a_writer_adds_a_document_that_the_worker_embeds_and_an_example(writer: str, worker: Worker) -> None:
    with psycopg.connect(writer) as conn:
        conn.execute(
            "INSERT INTO memora.document (collection_id, external_id, content) "
            "SELECT id, 'dog', 'A lazy dog sleeps all day in the sun.' FROM memora.collection"
        )
        conn.execute(
            "INSERT INTO memora.example (dataset_id, format, input, label) "
            "SELECT id, 'classification', '{\"text\": \"WIN a prize now\"}', 'spam' FROM memora.dataset"
        )

    while worker.run_once():  # the setup's document and the writer's
        pass

    with psycopg.connect(writer) as conn:
        state = conn.execute(
            "SELECT d.status, count(e.chunk_id) FROM memora.document d JOIN memora.chunk c ON c.document_id = d.id "
            "JOIN memora.embedding e ON e.chunk_id = c.id WHERE d.external_id = 'dog' GROUP BY d.status"
        ).fetchall()
        example = conn.execute(
            "SELECT seq IS NOT NULL, split IS NOT NULL, content_hash IS NOT NULL FROM memora.example"
        ).fetchall()
        assert state == [("ready", 1)]
        assert example == [(True, True, True)]
        # Its text changes: queued again. Deleted: its chunks, vectors and BM25 statistics go with it.
        conn.execute("UPDATE memora.document SET content = 'A lazy cat.' WHERE external_id = 'dog'")
        assert conn.execute("SELECT status FROM memora.document WHERE external_id = 'dog'").fetchone() == ("pending",)
        conn.execute("DELETE FROM memora.document WHERE external_id = 'dog'")
        conn.execute("DELETE FROM memora.example")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM memora.document").fetchone() == (1,)

    assert "permission denied for table" in refused(writer, "DELETE FROM memora.collection")
    assert "permission denied for table" in refused(writer, "UPDATE memora.dataset SET name = 'x'")
