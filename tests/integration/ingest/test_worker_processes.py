"""Workers as separate `memora worker` processes: sharing a queue, dying mid-document, stopping on SIGTERM."""

from __future__ import annotations

import signal

import pytest

from tests.integration.ingest.processes import (
    add_documents,
    assert_complete_without_duplicates,
    execute,
    openai_collection,
    wait_for,
    worker_process,
)
from tests.openai_server import OpenAIServer

DOCUMENTS = 3


@pytest.fixture(name="openai_collection")
def openai_collection_fixture(fresh_db_url: str, openai_server: OpenAIServer) -> dict[str, str]:
    """A collection embedded by the loopback OpenAI-compatible server; returns the worker's environment for it."""
    return openai_collection(fresh_db_url, openai_server)


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
