"""Workers as separate `memora worker` processes: sharing a queue, dying mid-document, stopping on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from app.config import Settings
from app.db.query import in_schema
from tests.openai_server import OpenAIServer

DOCUMENTS = 3
SCHEMA = Settings().db_schema  # the schema tests/conftest.py builds the test database in
TEXT = "\n\n".join(f"Section {i}: the worker embeds this paragraph about subject {i}." for i in range(6))


def worker_process(url: str, *args: str, **env: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MEMORA_")} | {"MEMORA_DB_SCHEMA": SCHEMA}
    environment |= env
    return subprocess.Popen(
        [sys.executable, "-m", "app", "--database-url", url, "worker", *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def execute(url: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """STATEMENT, naming memora.<object> as psql users do, run in the test database's schema."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(in_schema(statement, SCHEMA), params)
        return cursor.fetchall() if cursor.description else []


def add_documents(url: str, count: int, collection: str = "docs") -> None:
    for i in range(count):
        execute(
            url,
            "INSERT INTO memora.document (collection_id, external_id, content) "
            "SELECT id, %s, %s FROM memora.collection WHERE name = %s",
            (f"doc-{i}", f"Document {i}.\n\n{TEXT}", collection),
        )


def wait_for(condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def assert_complete_without_duplicates(url: str, expected_documents: int) -> None:
    rows = execute(
        url,
        "SELECT d.status, count(c.id), count(DISTINCT c.ordinal), max(c.ordinal) + 1, count(e.chunk_id), "
        "bool_and(substr(d.content, c.char_start + 1, c.char_end - c.char_start) = c.text) "
        "FROM memora.document d JOIN memora.chunk c ON c.document_id = d.id "
        "LEFT JOIN memora.embedding e ON e.chunk_id = c.id GROUP BY d.id, d.status",
    )
    assert len(rows) == expected_documents
    for status, chunks, ordinals, last, vectors, spans_match in rows:
        assert status == "ready"
        assert chunks == ordinals == last == vectors
        assert spans_match


@pytest.fixture
def openai_collection(fresh_db_url: str, openai_server: OpenAIServer) -> dict[str, str]:
    """A collection embedded by the loopback OpenAI-compatible server; returns the worker's environment for it."""
    execute(
        fresh_db_url,
        "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions, chunking) "
        "VALUES ('docs', 'openai', 'text-embedding-3-small', 64, %s)",
        ('{"strategy": "recursive", "size": 16, "overlap": 0}',),
    )
    return {"MEMORA_OPENAI_BASE_URL": openai_server.base_url, "MEMORA_OPENAI_API_KEY": "sk-test-secret"}


def test_two_workers_share_the_queue_without_double_work(
    fresh_db_url: str, openai_server: OpenAIServer, openai_collection: dict[str, str]
) -> None:
    add_documents(fresh_db_url, 30)
    # Slow embedding calls keep both workers busy at once, however the machine schedules their start.
    openai_server.delay_next(1000, 0.15, path="/v1/embeddings")

    env = {"MEMORA_WORKER_BATCH_SIZE": "2", **openai_collection}
    workers = [worker_process(fresh_db_url, "--until-empty", **env) for _ in range(2)]
    outputs = [worker.communicate(timeout=180) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], outputs
    processed = [int(stdout.split("processed ")[1].split(" ")[0]) for stdout, _ in outputs]
    assert sum(processed) == 30
    assert min(processed) > 0  # both took part
    assert execute(fresh_db_url, "SELECT DISTINCT attempts FROM memora.document") == [(1,)]
    assert_complete_without_duplicates(fresh_db_url, 30)


def test_a_killed_worker_leaves_a_lease_that_another_takes_over(
    fresh_db_url: str, openai_server: OpenAIServer, openai_collection: dict[str, str]
) -> None:
    add_documents(fresh_db_url, DOCUMENTS)
    openai_server.delay_next(1, 60, path="/v1/embeddings")
    lease = {"MEMORA_WORKER_LEASE_SECONDS": "5", **openai_collection}

    doomed = worker_process(fresh_db_url, **lease)
    wait_for(lambda: openai_server.requests_to("/v1/embeddings"))
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate(timeout=30)
    in_flight = execute(fresh_db_url, "SELECT DISTINCT status FROM memora.document")

    rescuer = worker_process(fresh_db_url, "--until-empty", **lease)
    stdout, stderr = rescuer.communicate(timeout=120)

    assert in_flight == [("processing",)]
    assert rescuer.returncode == 0, stderr
    assert f"processed {DOCUMENTS} documents" in stdout
    assert execute(fresh_db_url, "SELECT DISTINCT attempts FROM memora.document") == [(2,)]
    assert_complete_without_duplicates(fresh_db_url, DOCUMENTS)
    assert "sk-test-secret" not in stdout + stderr
    assert openai_server.requests_to("/v1/embeddings")[-1].headers["authorization"] == "Bearer sk-test-secret"


def test_sigterm_finishes_the_current_batch_then_exits(
    fresh_db_url: str, openai_server: OpenAIServer, openai_collection: dict[str, str]
) -> None:
    add_documents(fresh_db_url, DOCUMENTS)
    openai_server.delay_next(1, 2, path="/v1/embeddings")

    worker = worker_process(fresh_db_url, **openai_collection)
    wait_for(lambda: openai_server.requests_to("/v1/embeddings"))
    worker.send_signal(signal.SIGTERM)
    stdout, stderr = worker.communicate(timeout=60)

    assert worker.returncode == 0, stderr
    assert f"processed {DOCUMENTS} documents" in stdout
    assert_complete_without_duplicates(fresh_db_url, DOCUMENTS)
