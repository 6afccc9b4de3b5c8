"""X-Request-ID: one per request (or the client's, if sane), returned in the response, carried by every log line of
the request and by the worker's lines about the documents the request created or changed."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.config import Settings
from app.db.engine import make_engine
from app.db.query import Query
from app.ingest.worker import Worker
from app.observe import metrics
from app.observe.context import HEADER
from app.observe.logs import handler
from tests.openai_server import OpenAIServer

OURS = re.compile(r"[0-9a-f]{32}")
log = logging.getLogger("tests.observe")


@contextmanager
def json_lines(logger: str, level: int = logging.DEBUG) -> Iterator[list[dict[str, Any]]]:
    """The lines LOGGER writes inside the block, through the JSON handler MEMORA_LOG_FORMAT=json installs."""
    stream = io.StringIO()
    out = handler("json", stream)
    target = logging.getLogger(logger)
    old_level = target.level
    target.addHandler(out)
    target.setLevel(level)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        target.removeHandler(out)
        target.setLevel(old_level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


def app_that_logs() -> FastAPI:
    """The API with two extra routes: one that logs a line, one that fails unhandled."""
    app = create_app(Settings(database_url="postgresql://nobody@127.0.0.1:9/nothing"))

    @app.get("/test/log")
    def log_something() -> dict[str, str]:
        log.info("handling the request")
        return {}

    @app.get("/test/fail")
    def fail() -> None:
        raise RuntimeError("boom")

    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(app_that_logs(), raise_server_exceptions=False) as client:
        yield client


def test_each_request_gets_an_id_of_its_own(client: TestClient) -> None:
    first = client.get("/test/log").headers["X-Request-ID"]
    second = client.get("/no/such/path").headers["X-Request-ID"]

    assert OURS.fullmatch(first)
    assert OURS.fullmatch(second)
    assert first != second


@pytest.mark.parametrize("incoming", ["trace-42", "0af7651916cd43dd8448eb211c80319c", "lb:10.0.0.1:5.a_b", "x" * 128])
def test_a_sane_incoming_id_is_kept(client: TestClient, incoming: str) -> None:
    assert client.get("/test/log", headers={"X-Request-ID": incoming}).headers["X-Request-ID"] == incoming


@pytest.mark.parametrize("incoming", ["", "x" * 129, "has space", "semi;colon", 'quote"', "<script>", "é"])
def test_an_insane_incoming_id_is_replaced(client: TestClient, incoming: str) -> None:
    returned = client.get("/test/log", headers={"X-Request-ID": incoming.encode()}).headers["X-Request-ID"]

    assert OURS.fullmatch(returned)


def test_json_log_lines_carry_the_request_id(client: TestClient) -> None:
    with json_lines("tests.observe") as lines:
        client.get("/test/log", headers={"X-Request-ID": "trace-42"})
        log.info("outside any request")

    assert [(line["message"], line["request_id"]) for line in lines] == [
        ("handling the request", "trace-42"),
        ("outside any request", None),
    ]
    assert lines[0]["level"] == "info"
    assert lines[0]["logger"] == "tests.observe"


def test_an_unhandled_error_is_counted_and_answered_with_the_id(client: TestClient) -> None:
    labels = ("GET", "/test/fail", "500")
    before = metrics.REQUESTS.labels(*labels)._value.get()

    response = client.get("/test/fail", headers={"X-Request-ID": "trace-500"})

    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "trace-500"
    assert metrics.REQUESTS.labels(*labels)._value.get() - before == 1


def test_the_worker_logs_a_document_with_the_id_of_the_request_that_uploaded_it(
    fresh_db_url: str, openai_server: OpenAIServer
) -> None:
    settings = Settings(
        database_url=fresh_db_url, openai_base_url=openai_server.base_url, openai_api_key="sk-test",
        openai_max_retries=0, worker_retry_seconds=0,
    )  # fmt: skip
    body = {
        "name": "docs",
        "embedding_provider": "openai",
        "embedding_model": "text-embedding-3-small",
        "dimensions": 16,
    }
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/collections", json=body).status_code == 201
        upload = client.post(
            "/v1/collections/docs/documents",
            json=[{"external_id": "a", "content": "Alpha text."}],
            headers={"X-Request-ID": "upload-1"},
        )
        client.post(
            "/v1/collections/docs/documents",
            json=[{"external_id": "b", "content": "Beta text."}],
            headers={"X-Request-ID": "upload-2"},
        )
    assert upload.status_code == 202
    engine = make_engine(settings, "test")
    with engine.connect() as conn:
        ids = dict(Query("SELECT external_id, id FROM memora.document").run(conn).all())
        stored = dict(Query("SELECT external_id, request_id FROM memora.document").run(conn).all())
    assert stored == {"a": "upload-1", "b": "upload-2"}

    worker = Worker(settings.model_copy(update={"worker_batch_size": 1}), engine)
    with json_lines("app.ingest.worker") as lines:
        openai_server.fail_next(1, 503)  # the first document's first attempt fails, and is retried
        worker.run(threading.Event(), until_empty=True)
    engine.dispose()

    about = {doc: [line for line in lines if f"document {ids[doc]} " in line["message"]] for doc in ids}
    assert [(line["message"].split(":")[0], line["request_id"]) for line in about["a"]] == [
        (f"document {ids['a']} will retry in 0", "upload-1"),
        (f"document {ids['a']} ready", "upload-1"),
    ]
    assert [(line["message"], line["request_id"]) for line in about["b"]] == [
        (f"document {ids['b']} ready", "upload-2")
    ]


def test_a_patch_that_queues_the_documents_again_becomes_their_request(api: TestClient, db: Session) -> None:
    body = {"name": "docs", "embedding_provider": "hashing", "dimensions": 16}
    assert api.post("/v1/collections", json=body).status_code == 201
    api.post("/v1/collections/docs/documents", json={"external_id": "a", "content": "A."}, headers={HEADER: "up"})
    unchanged = {"external_id": "a", "content": "A."}
    api.post("/v1/collections/docs/documents", json=unchanged, headers={HEADER: "same"})
    request_id = Query("SELECT request_id FROM memora.document WHERE external_id = 'a'")
    after_upload = request_id.run(db).scalar_one()

    chunking = {"chunking": {"strategy": "recursive", "size": 64, "overlap": 0}}
    assert api.patch("/v1/collections/docs", json=chunking, headers={HEADER: "rechunk"}).status_code == 200

    assert after_upload == "up"  # the same content again changed nothing, its request neither
    assert request_id.run(db).scalar_one() == "rechunk"
