"""The total size of a request body (issue 13 case 11): a 413 `payload_too_large` as soon as the bytes received pass
the limit of the route's kind, whether the client sent Content-Length or chunked transfer encoding, the rest never
read, and nothing stored."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Collection, Dataset, Document, Example
from tests.conftest import app_on

JSON_LIMIT = 4096
UPLOAD_LIMIT = 64 * 1024
IMPORT_LIMIT = 128 * 1024
PART = 1024
BOUNDARY = "memora-test-boundary"


class Body:
    """A chunked body of PART-byte pieces that counts the pieces the server asked for."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = pieces
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            for start in range(0, len(piece), PART):
                self.sent += 1
                yield piece[start : start + PART]

    @property
    def total(self) -> int:
        return sum(map(len, self.pieces))


@pytest.fixture
def app(settings: Settings, engine: Engine, db: Session) -> FastAPI:
    """The API with small limits, its requests in the test's rolled-back transaction."""
    limited = settings.model_copy(
        update={"max_json_body_bytes": JSON_LIMIT, "max_upload_bytes": UPLOAD_LIMIT, "max_import_bytes": IMPORT_LIMIT}
    )
    app = app_on(db, limited, engine)
    return app


@pytest.fixture(autouse=True)
def client(app: FastAPI, db: Session) -> Iterator[TestClient]:
    """The app started, with collection kb and dataset ds."""
    with TestClient(app) as client:
        assert client.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing"}).status_code == 201
        assert client.post("/v1/datasets", json={"name": "ds", "task": "classification"}).status_code == 201
        yield client


def send(app: FastAPI, path: str, body: Body, headers: dict[str, str]) -> httpx.Response:
    """POST BODY to APP piece by piece, as the server hands a body to it (httpx's ASGI transport reads the next
    piece only when the app asks for it; TestClient would read the whole body first)."""

    async def pieces() -> AsyncIterator[bytes]:
        for piece in body:
            yield piece

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.post(path, content=pieces(), headers=headers)

    return anyio.run(post)


def multipart(*files: tuple[str, bytes]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        f"Content-Type: text/plain\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, data in files
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def assert_too_large(response_status: int, body: dict[str, object], setting: str, limit: int) -> None:
    assert response_status == 413, body
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == "payload_too_large"
    assert error["details"] == {"limit": limit, "setting": setting}
    assert setting in str(error["message"])


def count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def test_a_chunked_json_body_over_the_limit_is_413_and_read_no_further(
    app: FastAPI, client: TestClient, db: Session
) -> None:
    description = "x" * (10 * JSON_LIMIT)
    body = Body(json.dumps({"name": "big", "embedding_provider": "hashing", "description": description}).encode())

    response = send(app, "/v1/collections", body, {"content-type": "application/json"})

    assert_too_large(response.status_code, response.json(), "MEMORA_MAX_JSON_BODY_BYTES", JSON_LIMIT)
    assert "content-length" not in response.request.headers
    assert body.sent == JSON_LIMIT // PART + 1  # the piece that passed the limit, and not one more
    assert db.scalar(select(func.count()).where(Collection.name == "big")) == 0


def test_a_declared_length_over_the_limit_is_413_before_a_byte_is_read(app: FastAPI) -> None:
    body = Body(b"{" + b" " * (2 * JSON_LIMIT) + b"}")
    headers = {"content-type": "application/json", "content-length": str(body.total)}

    response = send(app, "/v1/collections/kb/search", body, headers)

    assert_too_large(response.status_code, response.json(), "MEMORA_MAX_JSON_BODY_BYTES", JSON_LIMIT)
    assert str(body.total) in response.json()["error"]["message"]
    assert body.sent == 0


def test_chunked_multipart_files_each_under_the_limit_are_413_together(
    app: FastAPI, client: TestClient, db: Session
) -> None:
    file = b"words " * (UPLOAD_LIMIT // 6 // 2)  # half the limit: each file alone would pass
    body = Body(multipart(*((f"f{i}.txt", file) for i in range(5))))
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}

    response = send(app, "/v1/collections/kb/documents", body, headers)

    assert_too_large(response.status_code, response.json(), "MEMORA_MAX_UPLOAD_BYTES", UPLOAD_LIMIT)
    assert body.sent == UPLOAD_LIMIT // PART + 1
    assert count(db, Document) == 0


def test_uploads_get_the_upload_limit_not_the_json_one(app: FastAPI, db: Session) -> None:
    file = b"words " * (4 * JSON_LIMIT // 6)
    body = Body(multipart(("notes.txt", file)))
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}

    response = send(app, "/v1/collections/kb/documents", body, headers)

    assert response.status_code == 202, response.text
    assert count(db, Document) == 1


def test_a_chunked_json_array_of_examples_gets_the_upload_limit(app: FastAPI, db: Session) -> None:
    examples = [{"text": f"example {i} " + "w" * 100, "label": "a"} for i in range(UPLOAD_LIMIT // 100)]
    body = Body(json.dumps(examples).encode())

    response = send(app, "/v1/datasets/ds/examples", body, {"content-type": "application/json"})

    assert_too_large(response.status_code, response.json(), "MEMORA_MAX_UPLOAD_BYTES", UPLOAD_LIMIT)
    assert count(db, Example) == 0


def test_a_chunked_import_over_its_limit_is_413_and_nothing_is_stored(
    app: FastAPI, client: TestClient, db: Session
) -> None:
    lines = b"".join(b'{"text": "example %d", "label": "a"}\n' % i for i in range(IMPORT_LIMIT // 30))
    body = Body(lines)

    response = send(app, "/v1/datasets/ds/import", body, {"content-type": "application/jsonl"})

    assert_too_large(response.status_code, response.json(), "MEMORA_MAX_IMPORT_BYTES", IMPORT_LIMIT)
    assert body.sent == IMPORT_LIMIT // PART + 1
    assert count(db, Example) == 0
    assert count(db, Dataset) == 1


def test_an_import_under_its_limit_but_over_the_upload_limit_is_read(
    app: FastAPI, client: TestClient, db: Session
) -> None:
    lines = b"".join(b'{"text": "example %d", "label": "a"}\n' % i for i in range(UPLOAD_LIMIT // 30))
    assert UPLOAD_LIMIT < len(lines) < IMPORT_LIMIT

    response = send(app, "/v1/datasets/ds/import", Body(lines), {"content-type": "application/jsonl"})

    assert response.status_code == 200, response.text
    assert count(db, Example) == UPLOAD_LIMIT // 30


# Through a real server: the 413 arrives while the client is still sending, and the server reads no further.


@pytest.fixture
def served(app: FastAPI) -> Iterator[tuple[str, int]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        started = threading.Event()
        for _ in range(1000):  # a safety net for a server that never starts, not a timing assertion
            if server.started:
                started.set()
                break
            started.wait(0.01)
        assert started.is_set()
        host, port = sock.getsockname()
        yield host, port
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def test_a_real_server_answers_413_before_the_chunked_upload_ends(served: tuple[str, int], db: Session) -> None:
    host, port = served
    head = (
        f"POST /v1/collections/kb/documents HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n"
    ).encode()
    start = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\n'.encode()
    piece = b"words " * 1000
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(head + b"%x\r\n%s\r\n" % (len(start), start))
        sent = 0
        while sent <= UPLOAD_LIMIT:  # just past the limit; the final zero-length chunk is never sent
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            more = conn.recv(65536)
            if not more:
                break
            answer += more

    head_lines, _, payload = answer.partition(b"\r\n\r\n")
    assert head_lines.startswith(b"HTTP/1.1 413 "), answer
    assert b"connection: close" in head_lines.lower()
    assert_too_large(413, json.loads(payload), "MEMORA_MAX_UPLOAD_BYTES", UPLOAD_LIMIT)
    assert count(db, Document) == 0


def test_a_collection_description_past_the_default_json_limit_is_413(
    api: TestClient, settings: Settings, db: Session
) -> None:
    """Issue 13 case 11: a 100 MB collection description was stored."""
    description = "x" * (settings.max_json_body_bytes + 1)

    response = api.post(
        "/v1/collections", json={"name": "huge", "embedding_provider": "hashing", "description": description}
    )

    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    assert db.scalar(select(func.count()).where(Collection.name == "huge")) == 0
