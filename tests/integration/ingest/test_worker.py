"""The ingestion worker against a real database: chunking, embedding only what changed, retries and leases.

The collection is embedded by the openai provider on a loopback OpenAI-compatible server, as a real deployment's
would be: the tests read what was embedded from the server's requests, and make embedding fail or stall there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import Engine

from app.config import Settings
from app.db.engine import make_engine
from app.db.query import Query
from app.ingest import repository
from app.ingest.worker import Worker
from tests.openai_server import OpenAIServer, Request, Response, error

PARAGRAPHS = [f"Paragraph {i} talks about topic {i} in some detail. It has a second sentence." for i in range(12)]
MODEL = "text-embedding-3-small"
EMBEDDINGS = "/v1/embeddings"

ADD = Query(
    "INSERT INTO memora.document (collection_id, external_id, title, content) "
    "SELECT id, %(external_id)s, %(title)s, %(content)s FROM memora.collection WHERE name = 'docs'"
)
EDIT = Query("UPDATE memora.document SET content = %(content)s WHERE external_id = %(external_id)s")
STATE = Query(
    "SELECT d.status, d.attempts, d.error, d.version, d.available_at > now() AS waiting, "
    "(SELECT count(*) FROM memora.chunk c WHERE c.document_id = d.id) AS chunks, "
    "(SELECT count(*) FROM memora.embedding e JOIN memora.chunk c ON c.id = e.chunk_id "
    " WHERE c.document_id = d.id) AS vectors "
    "FROM memora.document d WHERE external_id = %(external_id)s"
)
CHUNKS = Query(
    "SELECT c.id, c.ordinal, c.text, c.char_start, c.char_end FROM memora.chunk c "
    "JOIN memora.document d ON d.id = c.document_id WHERE d.external_id = %(e)s ORDER BY c.ordinal"
)


@pytest.fixture
def worker_settings(fresh_db_url: str, openai_server: OpenAIServer) -> Settings:
    return Settings(
        database_url=fresh_db_url, worker_retry_seconds=0, worker_max_attempts=3, worker_poll_seconds=30,
        openai_base_url=openai_server.base_url, openai_api_key="sk-test", openai_max_retries=0,
    )  # fmt: skip


@pytest.fixture
def engine(worker_settings: Settings) -> Iterator[Engine]:
    engine = make_engine(worker_settings, "worker")
    with engine.begin() as conn:
        Query(
            "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions, chunking) "
            """VALUES ('docs', 'openai', %(model)s, 16, '{"strategy": "recursive", "size": 24, "overlap": 0}')"""
        ).run(conn, {"model": MODEL})
    yield engine
    engine.dispose()


@pytest.fixture
def worker(worker_settings: Settings, engine: Engine) -> Worker:
    return Worker(worker_settings, engine)


def embedded(server: OpenAIServer) -> list[str]:
    """Every text the server was asked to embed, in order."""
    return [text for request in server.requests_to(EMBEDDINGS) for text in request.json()["input"]]


def add(engine: Engine, external_id: str, content: str, title: str = "") -> None:
    with engine.begin() as conn:
        ADD.run(conn, {"external_id": external_id, "title": title, "content": content})


def edit(engine: Engine, external_id: str, content: str) -> None:
    with engine.begin() as conn:
        EDIT.run(conn, {"external_id": external_id, "content": content})


def state(engine: Engine, external_id: str) -> dict[str, object]:
    with engine.connect() as conn:
        return dict(STATE.run(conn, {"external_id": external_id}).one()._mapping)


def chunks(engine: Engine, external_id: str) -> list[tuple[int, int, str, int, int]]:
    with engine.connect() as conn:
        return [tuple(row) for row in CHUNKS.run(conn, {"e": external_id})]


def wait_until(condition: Callable[[], object], timeout: float = 30) -> None:
    """Until CONDITION holds; the timeout is a safety net for a stuck test, not a bound the test checks."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_document_inserted_with_sql_is_chunked_and_embedded(
    engine: Engine, worker: Worker, openai_server: OpenAIServer
) -> None:
    content = "\n\n".join(PARAGRAPHS)
    add(engine, "doc", content, title="Topics")

    assert worker.run_once() == 1

    after = state(engine, "doc")
    assert after["status"] == "ready"
    assert after["chunks"] == after["vectors"]
    stored = chunks(engine, "doc")
    assert len(stored) > 3
    for _, _, chunk_text, start, end in stored:
        assert content[start:end] == chunk_text
    assert [row[1] for row in stored] == list(range(len(stored)))
    texts = embedded(openai_server)
    assert len(texts) == len(stored)
    assert all(text_.startswith("Topics\n\n") for text_ in texts)  # the title is embedded with the text
    with engine.connect() as conn:
        models = Query("SELECT DISTINCT model FROM memora.embedding").run(conn).scalars().all()
    assert models == [MODEL]


def test_editing_one_paragraph_re_embeds_only_its_chunks(
    engine: Engine, worker: Worker, openai_server: OpenAIServer
) -> None:
    add(engine, "doc", "\n\n".join(PARAGRAPHS))
    worker.run_once()
    before = chunks(engine, "doc")
    openai_server.requests.clear()

    edited = list(PARAGRAPHS)
    edited[5] = "Paragraph 5 now says something else entirely. Brand new words here."
    edit(engine, "doc", "\n\n".join(edited))
    worker.run_once()

    after = chunks(engine, "doc")
    assert 1 <= len(embedded(openai_server)) <= 2
    assert all("Paragraph 5 now" in text_ for text_ in embedded(openai_server))
    kept_ids = {row[0] for row in before} & {row[0] for row in after}
    assert len(kept_ids) >= len(before) - 2  # unchanged chunks keep their rows (and ids, and vectors)
    assert state(engine, "doc")["chunks"] == state(engine, "doc")["vectors"] == len(after)


def test_the_same_content_again_does_nothing(engine: Engine, worker: Worker, openai_server: OpenAIServer) -> None:
    add(engine, "doc", "\n\n".join(PARAGRAPHS))
    worker.run_once()
    openai_server.requests.clear()

    edit(engine, "doc", "\n\n".join(PARAGRAPHS))

    assert worker.run_once() == 0
    assert state(engine, "doc")["version"] == 1
    assert embedded(openai_server) == []


def test_text_seen_elsewhere_in_the_collection_reuses_its_vector(
    engine: Engine, worker: Worker, openai_server: OpenAIServer
) -> None:
    add(engine, "first", "\n\n".join(PARAGRAPHS))
    worker.run_once()
    openai_server.requests.clear()

    add(engine, "copy", "\n\n".join(PARAGRAPHS))
    worker.run_once()

    assert embedded(openai_server) == []
    assert state(engine, "copy")["vectors"] == state(engine, "first")["vectors"]


def test_failures_retry_then_fail_while_the_queue_goes_on(
    engine: Engine, worker: Worker, openai_server: OpenAIServer
) -> None:
    add(engine, "flaky", "Some text that will not embed at first.")
    openai_server.fail_next(1, 500, path=EMBEDDINGS)
    worker.run_once()
    first = state(engine, "flaky")

    worker.run_once()
    recovered = state(engine, "flaky")

    assert (first["status"], first["attempts"]) == ("pending", 1)
    assert "HTTP 500: injected failure 500" in str(first["error"])
    assert recovered["status"] == "ready"
    assert recovered["error"] is None

    add(engine, "doomed", "This one never embeds.")
    openai_server.fail_next(3, 500, path=EMBEDDINGS)
    for _ in range(3):
        worker.run_once()
    add(engine, "fine", "But this one does.")
    worker.run_once()

    doomed = state(engine, "doomed")
    assert (doomed["status"], doomed["attempts"]) == ("failed", 3)
    assert "injected failure 500" in str(doomed["error"])
    assert state(engine, "fine")["status"] == "ready"


def test_retry_waits_with_backoff(worker_settings: Settings, engine: Engine, openai_server: OpenAIServer) -> None:
    slow_retry = Worker(worker_settings.model_copy(update={"worker_retry_seconds": 60}), engine)
    add(engine, "flaky", "Text.")
    openai_server.fail_next(1, 500, path=EMBEDDINGS)

    slow_retry.run_once()

    assert state(engine, "flaky")["waiting"] is True
    assert slow_retry.run_once() == 0


def test_a_bad_chunking_setting_fails_at_once(engine: Engine, worker: Worker) -> None:
    with engine.begin() as conn:
        Query("""UPDATE memora.collection SET chunking = '{"strategy": "sideways"}'""").run(conn)
    add(engine, "doc", "Text.")

    worker.run_once()

    after = state(engine, "doc")
    assert (after["status"], after["attempts"]) == ("failed", 1)
    assert "strategy" in str(after["error"])


def test_an_expired_lease_is_taken_over_without_duplicates(
    worker_settings: Settings, engine: Engine, worker: Worker
) -> None:
    add(engine, "doc", "\n\n".join(PARAGRAPHS))

    with engine.begin() as conn:  # a worker claims the document, then dies
        assert len(repository.claim(conn, "dead-worker", 10, timedelta(seconds=300))) == 1
    assert worker.run_once() == 0  # leased: nobody else may take it
    with engine.begin() as conn:
        Query("UPDATE memora.document SET available_at = now() - interval '1 second'").run(conn)

    assert worker.run_once() == 1
    after = state(engine, "doc")
    assert (after["status"], after["attempts"]) == ("ready", 2)
    ordinals = [row[1] for row in chunks(engine, "doc")]
    assert ordinals == list(range(len(ordinals)))
    assert worker.stats.taken_over == 1


def test_an_edit_during_processing_wins(engine: Engine, worker: Worker, openai_server: OpenAIServer) -> None:
    add(engine, "doc", "Original text.")

    def edit_meanwhile(request: Request) -> Response:
        openai_server.route("POST", EMBEDDINGS, openai_server.embeddings)
        edit(engine, "doc", "Edited while the worker was busy.")
        return openai_server.embeddings(request)

    openai_server.route("POST", EMBEDDINGS, edit_meanwhile)
    worker.run_once()
    superseded = state(engine, "doc")
    worker.run_once()

    assert (superseded["status"], superseded["version"], superseded["chunks"]) == ("pending", 2, 0)
    assert worker.stats.superseded == 1
    assert [row[2] for row in chunks(engine, "doc")] == ["Edited while the worker was busy."]


ACTIVATE_VERSION_2 = Query(
    "INSERT INTO memora.embedding_version (collection_id, number, embedding_provider, embedding_model, dimensions, "
    "metric, storage, hnsw_m, hnsw_ef_construction) SELECT id, 2, embedding_provider, embedding_model, dimensions, "
    "'l2', storage, hnsw_m, hnsw_ef_construction FROM memora.collection WHERE name = 'docs'; "
    "UPDATE memora.collection SET active_version = 2 WHERE name = 'docs'"
)
VECTORS_BY_VERSION = Query("SELECT version, count(*) FROM memora.embedding GROUP BY version ORDER BY version")


def test_a_version_made_active_during_processing_sends_the_document_back(
    engine: Engine, worker: Worker, openai_server: OpenAIServer
) -> None:
    add(engine, "doc", "Some text to embed.")

    def activate_meanwhile(request: Request) -> Response:
        openai_server.route("POST", EMBEDDINGS, openai_server.embeddings)
        with engine.begin() as conn:
            ACTIVATE_VERSION_2.run(conn)
        return openai_server.embeddings(request)

    openai_server.route("POST", EMBEDDINGS, activate_meanwhile)
    worker.run_once()
    sent_back = state(engine, "doc")
    worker.run_once()

    # Its vectors were version 1's, made active no longer: back in the queue, the attempt not counted, then
    # embedded into version 2.
    assert (sent_back["status"], sent_back["attempts"], sent_back["chunks"]) == ("pending", 0, 0)
    assert state(engine, "doc")["status"] == "ready"
    with engine.connect() as conn:
        assert [tuple(row) for row in VECTORS_BY_VERSION.run(conn)] == [(2, 1)]


def test_notify_wakes_a_sleeping_worker(engine: Engine, worker: Worker) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        assert worker.asleep.wait(timeout=30)  # on LISTEN, with a poll interval of 30 s
        add(engine, "doc", "Wake up.")
        wait_until(lambda: state(engine, "doc")["status"] == "ready")
    finally:
        stop.set()
        thread.join(timeout=30)

    assert worker.stats.woken == 1  # the NOTIFY ended the sleep, not the poll interval
    assert worker.stats.documents == 1
    assert not thread.is_alive()


def test_vectors_are_float32_of_the_collection_dimensions(engine: Engine, worker: Worker) -> None:
    add(engine, "doc", "Check the stored vectors.")
    worker.run_once()

    with engine.connect() as conn:
        vector = Query("SELECT embedding FROM memora.embedding").run(conn).scalar()
    array = vector.to_numpy()
    assert array.dtype == np.float32
    assert array.shape == (16,)
    assert abs(float(np.linalg.norm(array)) - 1) < 1e-5


LEASE = Query("SELECT available_at, leased_by FROM memora.document WHERE external_id = %(external_id)s")


def lease_of(engine: Engine, external_id: str) -> tuple[object, object]:
    with engine.connect() as conn:
        return tuple(LEASE.run(conn, {"external_id": external_id}).one())  # type: ignore[return-value]


def test_leases_are_renewed_while_a_slow_batch_is_worked_on(
    worker_settings: Settings, engine: Engine, openai_server: OpenAIServer
) -> None:
    short_lease = worker_settings.model_copy(update={"worker_lease_seconds": 1})
    patient = Worker(short_lease, engine)
    add(engine, "doc", "Slow to embed.")
    leases: list[tuple[object, object]] = []

    def slow(request: Request) -> Response:
        leases.append(lease_of(engine, "doc"))
        wait_until(lambda: patient.stats.leases_renewed >= 3)  # the call lasts three renewals
        leases.append(lease_of(engine, "doc"))
        return openai_server.embeddings(request)

    openai_server.route("POST", EMBEDDINGS, slow)
    patient.run_once()

    (claimed_until, holder), (renewed_until, still_holder) = leases
    assert holder == still_holder == patient.name
    assert renewed_until > claimed_until  # type: ignore[operator]
    assert patient.stats.leases_lost == 0
    assert state(engine, "doc")["status"] == "ready"
    assert patient.stats.superseded == 0


def test_a_batch_whose_lease_was_taken_over_is_not_written_twice(
    worker_settings: Settings, engine: Engine, openai_server: OpenAIServer
) -> None:
    short_lease = worker_settings.model_copy(update={"worker_lease_seconds": 1})
    overtaken = Worker(short_lease, engine)
    add(engine, "doc", "The lease runs out while this embeds.")

    def overtake(request: Request) -> Response:
        with engine.begin() as conn:  # the lease runs out (a stalled worker), and a rival claims the document
            Query("UPDATE memora.document SET available_at = now() - interval '1 second'").run(conn)
            assert len(repository.claim(conn, "rival", 10, timedelta(seconds=300))) == 1
        wait_until(lambda: overtaken.stats.leases_renewed >= 1)
        return openai_server.embeddings(request)

    openai_server.route("POST", EMBEDDINGS, overtake)
    overtaken.run_once()

    after = state(engine, "doc")
    assert (after["status"], after["attempts"], after["chunks"]) == ("processing", 2, 0)
    assert lease_of(engine, "doc")[1] == "rival"
    assert overtaken.stats.leases_lost == 1  # the renewal noticed
    assert (overtaken.stats.superseded, overtaken.stats.documents) == (1, 0)  # and the write left it to the rival


def test_one_bad_document_does_not_fail_its_batch(engine: Engine, worker: Worker, openai_server: OpenAIServer) -> None:
    def refuse_poison(request: Request) -> Response:
        if any("POISON" in text_ for text_ in request.json()["input"]):
            return error(400, "input too long", "invalid_request_error")
        return openai_server.embeddings(request)

    openai_server.route("POST", EMBEDDINGS, refuse_poison)
    add(engine, "poison", "POISON text the model refuses.")
    add(engine, "innocent", "Harmless text in the same batch.")

    worker.run_once()

    assert state(engine, "innocent")["status"] == "ready"
    poisoned = state(engine, "poison")
    assert (poisoned["status"], poisoned["attempts"]) == ("failed", 1)  # a 400 is not retried
    assert "HTTP 400: input too long" in str(poisoned["error"])


def test_the_worker_survives_losing_the_database(worker_settings: Settings, engine: Engine) -> None:
    resilient = Worker(worker_settings, engine, wait=lambda stop, seconds: None)
    stop = threading.Event()
    thread = threading.Thread(target=resilient.run, args=(stop,))
    thread.start()
    try:
        wait_until(resilient.asleep.is_set)
        with engine.begin() as conn:  # every connection of the worker's, pooled and listening, is cut
            Query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE 'memora-worker%%' AND pid <> pg_backend_pid()"
            ).run(conn)
        wait_until(lambda: resilient.stats.reconnects == 1)
        wait_until(resilient.asleep.is_set)
        add(engine, "doc", "Survives a lost connection.")
        wait_until(lambda: state(engine, "doc")["status"] == "ready")
    finally:
        stop.set()
        thread.join(timeout=30)

    assert resilient.stats.documents == 1
    assert not thread.is_alive()
