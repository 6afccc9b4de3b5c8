"""`memora ingest --wait` follows a worker's progress as it embeds, not only when it writes a finished batch.

The embedding server is slow on purpose (every request waits), and the documents are few enough to be one claimed
batch: the table says nothing until the batch is written, so any movement before that comes from the worker's
progress messages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from app.config import Settings
from app.db.engine import make_engine
from app.db.query import Query
from app.ingest import repository
from app.ingest.progress import Snapshot, follow
from tests.openai_server import OpenAIServer

EMBEDDINGS = "/v1/embeddings"
DOCUMENTS = 4
PARAGRAPHS = [f"Paragraph {i} talks about topic {i} in some detail. It has a second sentence." for i in range(6)]
ADD = Query(
    "INSERT INTO memora.document (collection_id, external_id, content) "
    "SELECT id, %(external_id)s, %(content)s FROM memora.collection WHERE name = 'docs'"
)


@pytest.fixture
def slow_server(openai_server: OpenAIServer) -> OpenAIServer:
    """Every embedding request waits 0.4 s before it is answered: the eight calls take longer than several of the
    follower's intervals."""
    openai_server.delay_next(1000, 0.4, path=EMBEDDINGS)
    return openai_server


@pytest.fixture
def settings(fresh_db_url: str, slow_server: OpenAIServer) -> Settings:
    return Settings(
        database_url=fresh_db_url, openai_base_url=slow_server.base_url, openai_api_key="sk-test",
        embed_batch_size=3, worker_poll_seconds=0.2,
    )  # fmt: skip


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings, "cli")
    with engine.begin() as conn:
        Query(
            "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions, chunking) "
            "VALUES ('docs', 'openai', 'text-embedding-3-small', 16, %(chunking)s::jsonb)"
        ).run(conn, {"chunking": '{"strategy": "recursive", "size": 24, "overlap": 0}'})
    yield engine
    engine.dispose()


def add_documents(engine: Engine) -> None:
    with engine.begin() as conn:
        for n in range(DOCUMENTS):
            content = "\n\n".join(f"Document {n}. {paragraph}" for paragraph in PARAGRAPHS)
            ADD.run(conn, {"external_id": f"doc-{n}", "content": content})


def texts_embedded(server: OpenAIServer) -> int:
    return sum(len(request.json()["input"]) for request in server.requests_to(EMBEDDINGS))


def assert_progress_before_the_batch_was_written(snapshots: list[Snapshot], server: OpenAIServer) -> None:
    during = [s for s in snapshots if 0 < s.embedded < s.texts]
    assert len({s.embedded for s in during}) >= 2, snapshots  # it moved, more than once
    assert all(s.finished == 0 for s in during), snapshots  # while the table still said nothing was done
    final = snapshots[-1]
    assert final.documents == {"ready": DOCUMENTS}
    assert final.embedded == final.texts == texts_embedded(server) > 2 * 3  # several embedding calls


def test_progress_moves_per_embedding_call_with_a_worker_in_this_process(
    settings: Settings, engine: Engine, slow_server: OpenAIServer
) -> None:
    add_documents(engine)
    with engine.connect() as conn:
        assert repository.workers_connected(conn) == 0  # so follow() runs one here

    snapshots = list(follow(settings, engine, "docs"))

    assert_progress_before_the_batch_was_written(snapshots, slow_server)
    with engine.connect() as conn:
        assert repository.workers_connected(conn) == 0  # and stopped it at the end


def test_progress_of_a_worker_in_another_process(settings: Settings, engine: Engine, slow_server: OpenAIServer) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MEMORA_")} | {
        "MEMORA_DB_SCHEMA": settings.db_schema,
        "MEMORA_OPENAI_BASE_URL": slow_server.base_url,
        "MEMORA_OPENAI_API_KEY": "sk-test",
        "MEMORA_EMBED_BATCH_SIZE": "3",
    }
    url = str(settings.database_url)
    worker = subprocess.Popen(
        [sys.executable, "-m", "app", "--database-url", url, "worker"],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as conn:
                if repository.workers_connected(conn):
                    break
            assert time.monotonic() < deadline, "the worker did not connect"
            time.sleep(0.05)
        add_documents(engine)

        snapshots = list(follow(settings, engine, "docs"))
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)

    assert_progress_before_the_batch_was_written(snapshots, slow_server)
    assert f"processed {DOCUMENTS} documents" in out, err  # that worker did the work, none was started here


def test_a_batch_that_fails_and_is_retried_is_counted_once(
    settings: Settings, engine: Engine, slow_server: OpenAIServer
) -> None:
    add_documents(engine)
    slow_server.faults.clear()
    slow_server.fail_next(1, 500, path=EMBEDDINGS)  # the batch's first call: it is embedded again a document at a time
    impatient = settings.model_copy(update={"openai_max_retries": 0})

    final = list(follow(impatient, engine, "docs"))[-1]

    assert final.documents == {"ready": DOCUMENTS}
    assert final.embedded == final.texts == texts_embedded(slow_server) - 3  # the failed call's texts are not counted
