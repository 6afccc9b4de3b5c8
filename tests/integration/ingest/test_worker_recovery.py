"""How the worker meets failures: the embedding provider's, permanent or transient, and the database's outages.

The provider is the real `openai` client against the loopback OpenAI-compatible server, made to answer errors; the
outages are real ones: the worker's connection is ended with pg_terminate_backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from app.config import Settings
from app.db.engine import make_engine
from app.db.query import Query
from app.ingest.worker import Worker, reconnect_delay
from tests.openai_server import OpenAIServer, Request, Response, error

EMBEDDINGS = "/v1/embeddings"
ADD = Query(
    "INSERT INTO memora.document (collection_id, external_id, content) "
    "SELECT id, %(external_id)s, %(content)s FROM memora.collection WHERE name = 'docs'"
)
STATE = Query("SELECT status, attempts, error FROM memora.document WHERE external_id = %(external_id)s")
LISTENER = Query(
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'memora-worker-listen' AND datname = current_database()"
)
TERMINATE = Query("SELECT pg_terminate_backend(%(pid)s)")


@pytest.fixture
def worker_settings(fresh_db_url: str, openai_server: OpenAIServer) -> Settings:
    return Settings(
        database_url=fresh_db_url, worker_retry_seconds=0, worker_max_attempts=5, worker_poll_seconds=30,
        openai_base_url=openai_server.base_url, openai_api_key="sk-test", openai_max_retries=3,
    )  # fmt: skip


@pytest.fixture
def engine(worker_settings: Settings) -> Iterator[Engine]:
    engine = make_engine(worker_settings, "worker")
    with engine.begin() as conn:
        Query(
            "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions, chunking) "
            """VALUES ('docs', 'openai', 'text-embedding-3-small', 16, '{"strategy": "recursive", "size": 64}')"""
        ).run(conn)
    yield engine
    engine.dispose()


def add(engine: Engine, *external_ids: str) -> None:
    with engine.begin() as conn:
        for external_id in external_ids:
            ADD.run(conn, {"external_id": external_id, "content": f"The text of {external_id}."})


def state(engine: Engine, external_id: str) -> tuple[str, int, str | None]:
    with engine.connect() as conn:
        return tuple(STATE.run(conn, {"external_id": external_id}).one())  # type: ignore[return-value]


def wait_until(condition: Callable[[], object], timeout: float = 30) -> None:
    """Until CONDITION holds; the timeout is a safety net for a stuck test, not a bound the test checks."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# The embedding provider's errors.


def test_a_rejected_api_key_fails_the_whole_batch_at_once_with_the_providers_message(
    worker_settings: Settings, engine: Engine, openai_server: OpenAIServer
) -> None:
    openai_server.api_key = "sk-the-right-one"
    add(engine, "first", "second")
    worker = Worker(worker_settings, engine)

    assert worker.run_once() == 2

    for external_id in ("first", "second"):
        status, attempts, message = state(engine, external_id)
        assert (status, attempts) == ("failed", 1)
        assert message == "embedding model text-embedding-3-small: HTTP 401: Incorrect API key provided."
    assert len(openai_server.requests_to(EMBEDDINGS)) == 1  # no retry, and no second try document by document
    assert worker.stats.failed == 2
    assert worker.run_once() == 0


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_permanent_provider_errors_are_not_retried(
    status: int, worker_settings: Settings, engine: Engine, openai_server: OpenAIServer
) -> None:
    openai_server.fail_next(1, status, path=EMBEDDINGS)
    add(engine, "doc")

    Worker(worker_settings, engine).run_once()

    assert state(engine, "doc") == (
        "failed", 1, f"embedding model text-embedding-3-small: HTTP {status}: injected failure {status}"
    )  # fmt: skip
    assert len(openai_server.requests_to(EMBEDDINGS)) == 1


def test_an_unknown_model_fails_at_once(worker_settings: Settings, engine: Engine, openai_server: OpenAIServer) -> None:
    def no_such_model(request: Request) -> Response:
        message = "The model `text-embedding-3-small` does not exist or you do not have access to it."
        return error(404, message, "invalid_request_error", code="model_not_found")

    openai_server.route("POST", EMBEDDINGS, no_such_model)
    add(engine, "doc")

    Worker(worker_settings, engine).run_once()

    status, attempts, message = state(engine, "doc")
    assert (status, attempts) == ("failed", 1)
    assert "HTTP 404: The model `text-embedding-3-small` does not exist" in str(message)


@pytest.mark.parametrize(("status", "headers"), [(429, {"Retry-After": "0"}), (500, {}), (503, {})])
def test_transient_provider_errors_are_retried_by_the_provider_then_by_the_queue(
    status: int, headers: dict[str, str], worker_settings: Settings, engine: Engine, openai_server: OpenAIServer
) -> None:
    settings = worker_settings.model_copy(update={"openai_max_retries": 1})
    worker = Worker(settings, engine)
    openai_server.fail_next(2, status, headers=headers, path=EMBEDDINGS)
    add(engine, "doc")

    worker.run_once()
    after_first = state(engine, "doc")
    worker.run_once()

    message = f"embedding model text-embedding-3-small after 2 attempts: HTTP {status}: injected failure {status}"
    assert after_first == ("pending", 1, message)
    assert state(engine, "doc") == ("ready", 2, None)
    assert len(openai_server.requests_to(EMBEDDINGS)) == 3


def test_a_server_error_gives_the_whole_batch_back_without_trying_each_document(
    worker_settings: Settings, engine: Engine, openai_server: OpenAIServer
) -> None:
    worker = Worker(worker_settings.model_copy(update={"openai_max_retries": 0}), engine)
    openai_server.fail_next(1, 500, path=EMBEDDINGS)
    add(engine, "first", "second")

    worker.run_once()

    assert [state(engine, name)[:2] for name in ("first", "second")] == [("pending", 1), ("pending", 1)]
    assert len(openai_server.requests_to(EMBEDDINGS)) == 1  # a server error is no document's fault


def test_a_provider_that_does_not_answer_in_time_is_retried(
    worker_settings: Settings, engine: Engine, openai_server: OpenAIServer
) -> None:
    impatient = worker_settings.model_copy(update={"openai_max_retries": 0, "openai_timeout_seconds": 0.2})
    worker = Worker(impatient, engine)
    openai_server.delay_next(1, 5, path=EMBEDDINGS)
    add(engine, "doc")

    worker.run_once()
    after_first = state(engine, "doc")
    worker.run_once()

    assert after_first == ("pending", 1, "embedding model text-embedding-3-small: no answer within 0.2s")
    assert state(engine, "doc")[0] == "ready"


# The database's outages.


def listener_pid(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return LISTENER.run(conn).scalar()


def test_the_reconnect_delay_starts_over_after_the_worker_reached_the_database(
    worker_settings: Settings, engine: Engine
) -> None:
    delays: list[float] = []
    worker = Worker(worker_settings, engine, wait=lambda stop, seconds: delays.append(seconds))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        for outage in range(7):
            wait_until(worker.asleep.is_set)  # reconnected, polled the queue, and waiting for work again
            pid = listener_pid(engine)
            with engine.begin() as conn:
                assert TERMINATE.run(conn, {"pid": pid}).scalar()
            wait_until(lambda outage=outage: len(delays) > outage)
        wait_until(worker.asleep.is_set)
        add(engine, "after the outages")
        wait_until(lambda: state(engine, "after the outages")[0] == "ready")
    finally:
        stop.set()
        thread.join(timeout=30)

    # Seven outages, each after a successful reconnection: each waits the first delay, not 1, 2, 4... 60 s.
    assert delays == [reconnect_delay(30, 1)] * 7 == [30.0] * 7
    assert worker.stats.reconnects == 7
    assert not thread.is_alive()


def test_outages_in_a_row_wait_longer_each_time_up_to_a_minute() -> None:
    assert [reconnect_delay(5, failures) for failures in range(1, 8)] == [5, 10, 20, 40, 60, 60, 60]
