"""PostgreSQL restarted (pg_ctl restart -m fast) under four concurrent search clients on keep-alive connections:
every failed request is a 503 JSON `database_unavailable` (no 500, no reset), and every client recovers without
the API being restarted. benchmarks/faults.py measures how many and how long; this test asserts what they are."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI

from app.api.main import create_app
from app.config import Settings
from app.db.embedded import EmbeddedPostgres
from tests.integration.faults.conftest import Served

pytestmark = pytest.mark.slow

CLIENTS = 4
SETTLED = 3  # successes in a row that count as recovered
WAIT_S = 120  # a safety net only: each wait ends on an event


@dataclass
class Client:
    """One search client's answers, in order: 200, or the failure as (status, content type, error code)."""

    answers: list[object] = field(default_factory=list)
    progress: threading.Condition = field(default_factory=threading.Condition)

    def successes_since(self, mark: int) -> int:
        return sum(1 for answer in self.answers[mark:] if answer == 200)

    def settled(self, mark: int) -> bool:
        tail = self.answers[mark:][-SETTLED:]
        return len(tail) == SETTLED and all(answer == 200 for answer in tail)


def _search(served: Served, client: Client, stop: threading.Event) -> None:
    with httpx.Client(base_url=served.url, timeout=60) as http:
        while not stop.is_set():
            try:
                response = http.post("/v1/collections/kb/search", json={"query": "aardvark digs"})
            except httpx.TransportError as exc:
                answer: object = ("transport", type(exc).__name__, str(exc))
            else:
                if response.status_code == 200:
                    answer = 200
                else:
                    kind = response.headers.get("content-type")
                    code = response.json()["error"]["code"] if kind == "application/json" else response.text
                    answer = (response.status_code, kind, code)
            with client.progress:
                client.answers.append(answer)
                client.progress.notify_all()


def _wait(client: Client, done: Callable[[], bool]) -> None:
    with client.progress:
        assert client.progress.wait_for(done, timeout=WAIT_S), client.answers[-10:]


def test_a_restart_under_four_search_clients_is_503_json_then_recovery(
    embedded_settings: Settings, embedded: EmbeddedPostgres, serve: Callable[[FastAPI], Served]
) -> None:
    served = serve(create_app(embedded_settings))
    created = httpx.post(f"{served.url}/v1/collections", json={"name": "kb", "embedding_provider": "hashing"})
    assert created.status_code == 201, created.text
    clients = [Client() for _ in range(CLIENTS)]
    stop = threading.Event()
    threads = [threading.Thread(target=_search, args=(served, client, stop)) for client in clients]
    for thread in threads:
        thread.start()
    try:
        for client in clients:
            _wait(client, lambda c=client: c.successes_since(0) >= SETTLED)
        before = embedded.status()
        marks = [len(client.answers) for client in clients]
        after = embedded.restart()
        for client, mark in zip(clients, marks, strict=True):
            _wait(client, lambda c=client, m=mark: c.settled(m))
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    failures = [answer for client in clients for answer in client.answers if answer != 200]
    assert before is not None
    assert after.pid != before.pid  # restarted indeed
    assert all(answer == (503, "application/json", "database_unavailable") for answer in failures), failures
