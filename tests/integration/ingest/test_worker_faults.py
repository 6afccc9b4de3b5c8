"""Fault tests of ingestion: `kill -9` of a worker mid-batch (twice), and of the PostgreSQL postmaster mid-ingest.

Each ends with every acknowledged document ready, no chunk lost or written twice, and BM25 statistics equal to a
recount. Leases are 5 s here to keep the tests short; the time from a kill to the takeover is recorded
(record_property, shown with `pytest -rA`), and benchmarks/worker_faults.py measures it with the default lease.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from app.config import Settings
from app.db import migrate
from app.db.embedded import EmbeddedPostgres
from app.db.host import free_port
from tests.integration.ingest.processes import (
    TEXT,
    add_documents,
    assert_complete_without_duplicates,
    assert_statistics_match_a_recount,
    execute,
    openai_collection,
    wait_for,
    worker_process,
)
from tests.openai_server import OpenAIServer, Request, Response

pytestmark = pytest.mark.slow

EMBEDDINGS = "/v1/embeddings"
LEASE = {"MEMORA_WORKER_LEASE_SECONDS": "5", "MEMORA_WORKER_POLL_SECONDS": "0.5"}


def test_a_worker_killed_mid_batch_twice_loses_and_duplicates_nothing(
    fresh_db_url: str, openai_server: OpenAIServer, record_property: pytest.RecordProperty
) -> None:
    env = LEASE | openai_collection(fresh_db_url, openai_server)
    add_documents(fresh_db_url, 4)
    openai_server.delay_next(2, 300, path=EMBEDDINGS)  # the first two workers' calls hang until they are killed
    requests = lambda: openai_server.requests_to(EMBEDDINGS)  # noqa: E731

    worker = worker_process(fresh_db_url, **env)
    wait_for(requests, timeout=60)
    takeovers = []
    for kill in range(2):
        killed_at = time.monotonic()
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=30)
        assert execute(fresh_db_url, "SELECT DISTINCT status FROM memora.document") == [("processing",)]
        seen = len(requests())
        worker = worker_process(fresh_db_url, *(["--until-empty"] if kill else []), **env)
        wait_for(lambda seen=seen: len(requests()) > seen, timeout=60)  # the batch taken over, and embedding
        takeovers.append(round(requests()[seen].received_at - killed_at, 2))
    stdout, stderr = worker.communicate(timeout=120)

    record_property("kill_to_takeover_seconds", takeovers)
    print(f"kill -9 of a worker mid-batch, {LEASE['MEMORA_WORKER_LEASE_SECONDS']} s lease: taken over in {takeovers} s")
    assert worker.returncode == 0, stderr
    assert "processed 4 documents" in stdout
    assert stderr.count("took document") == 4  # the takeover is logged, per document
    assert execute(fresh_db_url, "SELECT DISTINCT attempts FROM memora.document") == [(3,)]
    assert_complete_without_duplicates(fresh_db_url, 4)
    assert_statistics_match_a_recount(fresh_db_url)


@pytest.fixture
def own_server() -> Iterator[tuple[EmbeddedPostgres, str]]:
    """An embedded server of the test's own, on a fixed port, migrated; its libpq URL.

    In a directory of /tmp rather than pytest's tmp_path: run as root, the server runs as another user, who must
    traverse the parents, and every pytest session that starts takes o+x back from /tmp/pytest-of-root.
    """
    with tempfile.TemporaryDirectory(prefix="memora-faults-") as directory:
        server = EmbeddedPostgres(Path(directory), port=free_port())
        try:
            url = server.ensure_running().url()
            migrate.upgrade(Settings(database_url=url))
            yield server, url
        finally:
            server.stop()


def restart_after_crash(server: EmbeddedPostgres) -> None:
    """Start the crashed server again on its port, once its backends have noticed their postmaster died.

    pg_ctl directly, not ensure_running(): that first checks the port is free with a bind() that the dead
    server's lingering connections refuse for a minute (issue 13, case 10); PostgreSQL itself binds with
    SO_REUSEADDR.
    """
    log_path = str(server.log_path)
    deadline = time.monotonic() + 60
    while True:
        try:
            server._pg_ctl("start", "-w", "-t", "60", "-l", log_path, "-o", f"-p {server.port}")
            return
        except Exception:  # the old shared memory is still attached: its backends are exiting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_postmaster_killed_mid_ingest_loses_no_acknowledged_document(
    own_server: tuple[EmbeddedPostgres, str], openai_server: OpenAIServer, record_property: pytest.RecordProperty
) -> None:
    server, url = own_server
    env = LEASE | openai_collection(url, openai_server) | {"MEMORA_WORKER_BATCH_SIZE": "4"}
    hold, held, release = threading.Event(), threading.Event(), threading.Event()

    def embeddings(request: Request) -> Response:
        """Embeddings, but with HOLD set the next call waits for RELEASE: the worker has a batch in hand."""
        if hold.is_set():
            hold.clear()
            held.set()
            release.wait(60)
        return openai_server.embeddings(request)

    openai_server.route("POST", EMBEDDINGS, embeddings)
    acknowledged: list[str] = []
    stop = threading.Event()

    def ingest() -> None:
        """Documents one per transaction, as clients send them: acknowledged once the commit returned."""
        number = 0
        while not stop.is_set():
            external_id = f"doc-{number}"
            try:
                execute(
                    url,
                    "INSERT INTO memora.document (collection_id, external_id, content) "
                    "SELECT id, %s, %s FROM memora.collection WHERE name = 'docs' "
                    "ON CONFLICT (collection_id, external_id) DO NOTHING",  # a commit whose answer was lost
                    (external_id, f"Document {number}.\n\n{TEXT}"),
                )
            except psycopg.OperationalError:
                time.sleep(0.1)  # the server is down: try the same document again
                continue
            acknowledged.append(external_id)
            number += 1
            time.sleep(0.02)

    worker = worker_process(url, **env)
    client = threading.Thread(target=ingest)
    client.start()
    try:
        wait_for(lambda: execute(url, "SELECT count(*) FROM memora.document WHERE status = 'ready'")[0][0] >= 5, 120)
        hold.set()
        assert held.wait(60)
        in_hand = execute(url, "SELECT external_id FROM memora.document WHERE status = 'processing'")
        postmaster = server.status()
        assert postmaster is not None
        os.kill(postmaster.pid, signal.SIGKILL)
        killed_at, acknowledged_before = time.monotonic(), len(acknowledged)
        release.set()  # the batch's write meets a dead server
        restart_after_crash(server)
        restarted_at = time.monotonic()
        wait_for(lambda: len(acknowledged) >= acknowledged_before + 20, 120)  # ingestion goes on after the restart
    finally:
        stop.set()
        release.set()
        client.join(timeout=60)
    wait_for(lambda: execute(url, "SELECT count(*) FROM memora.document WHERE status <> 'ready'") == [(0,)], 120)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)

    record_property("outage_seconds", round(restarted_at - killed_at, 2))
    record_property("acknowledged_documents", len(acknowledged))
    print(f"postmaster killed with {acknowledged_before} documents acknowledged, back in "
          f"{restarted_at - killed_at:.1f} s; {len(acknowledged)} acknowledged in all")  # fmt: skip
    assert worker.returncode == 0, stderr
    assert in_hand  # the kill came mid-batch
    assert "lost the database" in stderr  # the worker saw the crash, and stayed
    stored = {row[0] for row in execute(url, "SELECT external_id FROM memora.document")}
    assert set(acknowledged) <= stored
    assert_complete_without_duplicates(url, len(stored))
    assert_statistics_match_a_recount(url)
