"""Statement timeouts per kind of request (issue 13, bounded cost): search, import, export and everything else each
run under their own setting, applied per transaction, and a statement past it is a 504 `statement_timeout` naming
the setting to raise, never a 500.

The slow statement is a real one: another connection holds a lock on the table it reads, so it waits until the
timeout cancels it. Nothing here measures time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import text

from app.api.main import create_app
from app.config import Settings
from tests.integration.search.corpus import CORPUS, document
from tests.schema import SCHEMA

TIMEOUT_MS = 300


@pytest.fixture
def settings_of(fresh_db_url: str) -> Any:
    def make(**limits: int) -> Settings:
        return Settings(database_url=fresh_db_url, pool_size=1, **limits)

    return make


class Lock:
    """An ACCESS EXCLUSIVE lock on a table, held by another connection until released."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)
        # A safety net, not a measure: should the statement under test never time out, the lock goes after 60 s.
        self.conn.execute("SET idle_in_transaction_session_timeout = '60s'")

    def __call__(self, table: str) -> None:
        self.conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(SCHEMA, table)))

    def release(self) -> None:
        self.conn.rollback()


@pytest.fixture
def lock(fresh_db_url: str) -> Iterator[Lock]:
    held = Lock(fresh_db_url)
    yield held
    held.release()
    held.conn.close()


def serve(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


def store(client: TestClient) -> None:
    created = client.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 4})
    assert created.status_code == 201, created.text
    stored = client.post("/v1/collections/kb/documents", json=[document(item) for item in CORPUS])
    assert stored.status_code == 202, stored.text
    created = client.post("/v1/datasets", json={"name": "ds", "task": "classification"})
    assert created.status_code == 201, created.text
    added = client.post("/v1/datasets/ds/examples", json=[{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    assert added.status_code == 201, added.text


def assert_timeout(response: Any, variable: str, ms: int) -> None:
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert error["code"] == "statement_timeout"
    assert error["details"] == {"setting": variable, "timeout_ms": ms}
    assert variable in error["message"]


def test_a_search_past_its_timeout_is_504_naming_the_setting(settings_of: Any, lock: Lock) -> None:
    with serve(settings_of(search_statement_timeout_ms=TIMEOUT_MS)) as client:
        store(client)
        lock("chunk")

        # Hybrid search with the query embedded by the collection's model: the search commits before calling the
        # model, so the statement that waits runs in the request's second transaction.
        response = client.post("/v1/collections/kb/search", json={"query": "aardvark"})

    assert_timeout(response, "MEMORA_SEARCH_STATEMENT_TIMEOUT_MS", TIMEOUT_MS)


def test_an_answer_past_the_search_timeout_is_504(settings_of: Any, lock: Lock) -> None:
    with serve(settings_of(search_statement_timeout_ms=TIMEOUT_MS)) as client:
        store(client)
        lock("chunk")

        response = client.post("/v1/collections/kb/answer", json={"question": "aardvark?", "mode": "text"})

    assert_timeout(response, "MEMORA_SEARCH_STATEMENT_TIMEOUT_MS", TIMEOUT_MS)


def test_the_timeout_holds_for_its_request_only(settings_of: Any, fresh_db_url: str) -> None:
    settings = settings_of(search_statement_timeout_ms=TIMEOUT_MS, statement_timeout_ms=0)
    app = create_app(settings)
    with TestClient(app) as client:
        store(client)
        inside = client.post("/v1/collections/kb/search", json={"query": "aardvark", "mode": "text"})
        with app.state.engine.connect() as conn:  # pool_size=1: the connection the search used
            after = conn.execute(text("SHOW statement_timeout")).scalar_one()

    assert inside.status_code == 200, inside.text
    assert after == "0"


def test_an_import_past_its_timeout_is_504_and_stores_nothing(settings_of: Any, lock: Lock, fresh_db_url: str) -> None:
    with serve(settings_of(import_statement_timeout_ms=TIMEOUT_MS)) as client:
        store(client)
        lock("example")

        response = client.post(
            "/v1/datasets/ds/import",
            content=b'{"text": "c", "label": "x"}\n',
            headers={"content-type": "application/jsonl"},
        )

    assert_timeout(response, "MEMORA_IMPORT_STATEMENT_TIMEOUT_MS", TIMEOUT_MS)
    lock.release()
    with psycopg.connect(fresh_db_url) as conn:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, "example"))
        assert conn.execute(query).fetchone() == (2,)


def test_a_batch_past_the_export_timeout_is_504(settings_of: Any, lock: Lock) -> None:
    with serve(settings_of(export_statement_timeout_ms=TIMEOUT_MS)) as client:
        store(client)
        lock("example")

        response = client.get("/v1/datasets/ds/batches")

    assert_timeout(response, "MEMORA_EXPORT_STATEMENT_TIMEOUT_MS", TIMEOUT_MS)


def test_other_requests_get_the_connections_timeout(settings_of: Any, lock: Lock) -> None:
    with serve(settings_of(statement_timeout_ms=TIMEOUT_MS)) as client:
        store(client)
        lock("document")

        response = client.get("/v1/collections/kb/documents")

    assert_timeout(response, "MEMORA_STATEMENT_TIMEOUT_MS", TIMEOUT_MS)
