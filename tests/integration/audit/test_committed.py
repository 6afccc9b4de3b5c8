"""The trail on the API's real request session (commit on success, rollback on error), on a database of the test's
own: a write whose own transaction was rolled back is still in the trail, the key's name is recorded, and a trail
that cannot be written costs the client nothing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.auth import keys
from app.auth.principal import Role
from app.config import Settings
from app.db.engine import make_engine
from app.db.models import AuditEvent, Collection
from tests.live_server import serving


@pytest.fixture
def own_settings(fresh_db_url: str) -> Settings:
    return Settings(database_url=fresh_db_url)


@pytest.fixture
def check_engine(own_settings: Settings) -> Iterator[Engine]:
    engine = make_engine(own_settings, "test")
    yield engine
    engine.dispose()


@pytest.fixture
def client(own_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(own_settings)) as client:
        yield client


def trail(engine: Engine) -> list[tuple[Any, ...]]:
    with Session(engine) as db:
        rows = db.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        return [(e.key_name, e.method, e.path, e.collection, e.status) for e in rows]


def test_a_rolled_back_write_is_still_recorded(client: TestClient, check_engine: Engine) -> None:
    body = {"name": "kb", "embedding_provider": "hashing"}
    assert client.post("/v1/collections", json=body).status_code == 201
    assert client.post("/v1/collections", json=body).status_code == 409
    assert client.patch("/v1/collections/kb", json={"description": 5}).status_code == 422
    with Session(check_engine) as db:
        assert db.scalars(select(Collection.description)).all() == [""]
    assert trail(check_engine) == [
        (None, "POST", "/v1/collections", "kb", 201),
        (None, "POST", "/v1/collections", "kb", 409),
        (None, "PATCH", "/v1/collections/kb", "kb", 422),
    ]


def test_the_key_is_named_on_writes_it_made_and_writes_it_was_refused(
    client: TestClient, own_settings: Settings, check_engine: Engine
) -> None:
    """Through the real key check (the client's server is open, and a key sent to it is that key): a 404 of an
    admin key and the 403 of a read key both name the key; a bad key's 401 names none."""
    with Session(check_engine) as db, db.begin():
        admin = keys.create(db, own_settings, "ci-bot", Role.admin)
        reader = keys.create(db, own_settings, "analyst", Role.read)
        admin_id, reader_id = admin.row.id, reader.row.id
    bearer = {"Authorization": f"Bearer {admin.secret}"}

    assert client.delete("/v1/collections/nowhere", headers=bearer).status_code == 404
    assert client.delete("/v1/collections/kb", headers={"X-API-Key": reader.secret}).status_code == 403
    assert client.delete("/v1/collections/kb", headers={"X-API-Key": "mk_" + "x" * 43}).status_code == 401

    with Session(check_engine) as db:
        events = db.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [(e.key_id, e.key_name, e.status) for e in events] == [
        (admin_id, "ci-bot", 404),
        (reader_id, "analyst", 403),
        (None, None, 401),
    ]


def test_a_trail_that_cannot_be_written_is_logged_not_the_clients_error(
    client: TestClient, check_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> AbstractContextManager[Session]:
        raise ConnectionError("the audit database is gone")

    client.app.state.audit.sessions = broken  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR, logger="app.audit"):
        response = client.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing"})
    assert response.status_code == 201
    assert "could not record the audit event of POST /v1/collections" in caplog.text
    assert "could not delete old audit events" in caplog.text
    assert trail(check_engine) == []
    assert client.get("/v1/collections/kb").status_code == 200


def test_the_client_has_its_answer_before_the_event_is_written(own_settings: Settings) -> None:
    """Served by uvicorn: the response arrives while the recorder is still held back, and the event follows."""
    released, recorded = threading.Event(), threading.Event()
    app = create_app(own_settings)

    class HeldBack:
        def record(self, event: dict[str, Any]) -> None:
            assert released.wait(timeout=60)
            recorded.set()

    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        app.state.audit = HeldBack()
        response = http.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing"})
        assert response.status_code == 201
        assert not recorded.is_set()
        released.set()
        assert recorded.wait(timeout=60)
