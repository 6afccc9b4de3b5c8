"""The database out of reach: a 503 JSON `database_unavailable` on a connection that stays open, and the API
back on its own when the database is, also when the embedded server returns on another port."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from app.api.main import create_app
from app.config import Settings
from app.db.availability import database_unavailable
from app.db.embedded import EmbeddedPostgres
from app.db.engine import libpq_url, make_engine
from tests.integration.faults.conftest import Served

pytestmark = pytest.mark.slow

COLLECTION = {"name": "kb", "embedding_provider": "hashing", "dimensions": 16}
SEARCH = "/v1/collections/kb/search"


class Connection:
    """One keep-alive HTTP/1.1 connection: a request that follows a reset fails instead of silently reconnecting."""

    def __init__(self, served: Served) -> None:
        self.http = http.client.HTTPConnection(served.host, served.port, timeout=60)
        self.http.auto_open = 0  # never reconnect behind the test's back

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        payload = json.dumps(body) if body is not None else None
        self.http.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = self.http.getresponse()
        raw = response.read()
        assert response.getheader("Content-Type") == "application/json", raw
        return response.status, json.loads(raw)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def connection_to() -> Iterator[Callable[[Served], Connection]]:
    opened: list[Connection] = []

    def open_one(served: Served) -> Connection:
        conn = Connection(served)
        conn.http.connect()
        opened.append(conn)
        return conn

    yield open_one
    for conn in opened:
        conn.close()


def _unavailable(status: int, body: dict[str, Any]) -> bool:
    return status == 503 and body["error"]["code"] == "database_unavailable"


def test_a_stopped_server_is_a_503_and_the_api_recovers_on_a_new_port(
    embedded_settings: Settings,
    embedded: EmbeddedPostgres,
    serve: Callable[[FastAPI], Served],
    connection_to: Callable[[Served], Connection],
) -> None:
    served = serve(create_app(embedded_settings, worker=True))
    conn = connection_to(served)
    assert conn.request("POST", "/v1/collections", COLLECTION)[0] == 201
    old = embedded.status()
    assert old is not None

    assert embedded.stop()
    down = [conn.request("POST", SEARCH, {"query": "aardvark"}), conn.request("GET", "/v1/collections/kb")]
    health_status, health = conn.request("GET", "/healthz")

    with socket.socket() as probe:  # a port of its own, not the old one: the default picks any free port
        probe.bind(("127.0.0.1", 0))
        new_port = probe.getsockname()[1]
    moved = EmbeddedPostgres(embedded_settings.data_dir, port=new_port).ensure_running()
    assert moved.port != old.port
    searched = conn.request("POST", SEARCH, {"query": "aardvark"})
    accepted = conn.request("POST", "/v1/collections/kb/documents", {"external_id": "a", "content": "An aardvark."})
    document: dict[str, Any] = {}
    deadline = time.monotonic() + 60  # a safety net: the worker takes the document within a second or two
    while document.get("status") != "ready" and time.monotonic() < deadline:
        time.sleep(0.1)
        document = conn.request("GET", "/v1/collections/kb/documents/a")[1]
    health_again = conn.request("GET", "/healthz")

    assert all(_unavailable(*answer) for answer in down), down
    assert "not running" in down[0][1]["error"]["message"]
    assert health_status == 503
    assert health["database"]["reachable"] is False
    assert "not running" in health["database"]["error"]
    assert searched[0] == 200, searched
    assert accepted[0] == 202, accepted
    assert document["status"] == "ready", document  # the worker in the app followed the server too
    assert health_again[0] == 200
    assert health_again[1]["database"]["address"] == f"127.0.0.1:{moved.port}"


def test_an_internal_error_is_a_500_json_and_the_connection_stays(
    settings: Settings,
    engine: Engine,
    serve: Callable[[FastAPI], Served],
    connection_to: Callable[[Served], Connection],
) -> None:
    app = create_app(settings, engine=engine)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    conn = connection_to(serve(app))
    first = conn.request("GET", "/boom")
    second = conn.request("GET", "/healthz")

    assert first[0] == 500
    assert first[1]["error"]["code"] == "internal_error"
    assert second[0] == 200


def test_a_failed_statement_is_not_called_unavailable(settings: Settings, engine: Engine) -> None:
    app = create_app(settings, engine=engine)

    @app.get("/slow")
    def slow() -> None:
        with engine.connect() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 1"))
            conn.execute(text("SELECT pg_sleep(1)"))

    with TestClient(app) as client:
        response = client.get("/slow")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"


def test_connections_ended_by_the_server_leave_a_working_pool(settings: Settings, fresh_db_url: str) -> None:
    own = settings.model_copy(update={"database_url": fresh_db_url})
    with TestClient(create_app(own)) as client:
        assert [client.get("/v1/collections").status_code for _ in range(3)] == [200] * 3
        with psycopg.connect(fresh_db_url, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'memora-api' AND datname = current_database()"
            ).fetchone()
        after = [client.get("/v1/collections").status_code for _ in range(5)]

    assert ended is not None
    assert ended[0] >= 1
    assert after == [200] * 5


def test_a_connection_lost_mid_request_is_a_503_and_the_pool_recovers(
    settings: Settings,
    fresh_db_url: str,
    serve: Callable[[FastAPI], Served],
    connection_to: Callable[[Served], Connection],
) -> None:
    app = create_app(settings.model_copy(update={"database_url": fresh_db_url}))

    @app.get("/sleep")
    def sleep(request: Request) -> dict[str, str]:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(60) /* lost */"))
        return {}

    conn = connection_to(serve(app))
    answers: list[tuple[int, dict[str, Any]]] = []
    request = threading.Thread(target=lambda: answers.append(conn.request("GET", "/sleep")))
    request.start()
    with psycopg.connect(fresh_db_url, autocommit=True) as admin:
        deadline = time.monotonic() + 60  # a safety net: the query starts at once
        backend = None
        while backend is None and time.monotonic() < deadline:
            backend = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s", ("%/* lost */%",)
            ).fetchone()
        assert backend is not None
        admin.execute("SELECT pg_terminate_backend(%s)", backend)
    request.join()
    after = [conn.request("GET", "/v1/collections")[0] for _ in range(5)]

    assert len(answers) == 1
    assert _unavailable(*answers[0]), answers
    assert after == [200] * 5


def test_which_errors_mean_the_database_is_unavailable(settings: Settings, fresh_db_url: str) -> None:
    refused = make_engine(settings, "test", url="postgresql+psycopg://nobody@127.0.0.1:9/nothing")
    with pytest.raises(OperationalError) as unreachable:
        refused.connect()
    refused.dispose()

    victim = psycopg.connect(fresh_db_url, autocommit=True)
    with psycopg.connect(fresh_db_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
    with pytest.raises(psycopg.Error) as terminated:
        victim.execute("SELECT 1")
    victim.close()

    with psycopg.connect(libpq_url(fresh_db_url), autocommit=True) as conn:
        conn.execute("SET statement_timeout = 1")
        with pytest.raises(psycopg.errors.QueryCanceled) as timed_out:
            conn.execute("SELECT pg_sleep(1)")

    assert database_unavailable(unreachable.value)
    assert database_unavailable(terminated.value)
    assert not database_unavailable(timed_out.value)
    assert not database_unavailable(ValueError("not a database error"))
