"""A small OpenAI-compatible HTTP server on 127.0.0.1 for tests, with programmable failures.

Routes live in a table keyed by (method, path): more endpoints (/v1/chat/completions with streaming, /v1/files,
/v1/fine_tuning/jobs) are added with `server.route(...)`. A handler takes the parsed Request and returns a Response;
a Response with `chunks` is streamed (server-sent events) instead of sent with a Content-Length.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from app.embeddings.hashing import HashingEmbedder

# Widths the real models give when a request names no dimensions; any other model gets DEFAULT_DIMENSIONS.
MODEL_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
DEFAULT_DIMENSIONS = 256


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] | None = None

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


def error(status: int, message: str, kind: str = "server_error", headers: dict[str, str] | None = None) -> Response:
    """An error in the shape OpenAI sends."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return Response(status, body, headers or {})


@dataclass
class Fault:
    """What the next matching request meets instead of the route: a status, or a delay before the route answers."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str | None = None


Handler = Callable[[Request], Response]


class OpenAIServer:
    """Start with start() (or a with block); base_url is what openai.OpenAI(base_url=...) takes."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[Request] = []
        self.routes: dict[tuple[str, str], Handler] = {("POST", "/v1/embeddings"): self.embeddings}
        self.faults: deque[Fault] = deque()
        self.wrong_dimensions: int | None = None
        self.reverse_data = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "the server is not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def fail_next(
        self, count: int = 1, status: int = 500, *, headers: dict[str, str] | None = None, path: str | None = None
    ) -> None:
        """The next count requests (to path, or to any) get this status, with headers such as Retry-After."""
        with self._lock:
            self.faults.extend(Fault(status=status, headers=headers or {}, path=path) for _ in range(count))

    def delay_next(self, count: int = 1, seconds: float = 1.0, *, path: str | None = None) -> None:
        """The next count requests wait this long before they are answered (a timeout, seen from the client)."""
        with self._lock:
            self.faults.extend(Fault(delay=seconds, path=path) for _ in range(count))

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def start(self) -> OpenAIServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._serve(self)

            def do_POST(self) -> None:
                server._serve(self)

            def do_DELETE(self) -> None:
                server._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        # A short poll interval: stop() waits for the serving loop to notice, once per test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="openai-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, http: BaseHTTPRequestHandler) -> None:
        path = http.path.split("?", 1)[0]
        length = int(http.headers.get("Content-Length") or 0)
        request = Request(http.command, path, {k.lower(): v for k, v in http.headers.items()}, http.rfile.read(length))
        with self._lock:
            self.requests.append(request)
            fault = next((f for f in self.faults if f.path in (None, path)), None)
            if fault is not None:
                self.faults.remove(fault)
        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
        response = self._answer(request, fault)
        # A client that gave up (its timeout) is what a delay tests.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._write(http, response)

    def _answer(self, request: Request, fault: Fault | None) -> Response:
        if fault is not None and fault.status is not None:
            return error(fault.status, f"injected failure {fault.status}", headers=fault.headers)
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return error(401, "Incorrect API key provided.", "invalid_request_error")
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return error(404, f"no route {request.method} {request.path}", "invalid_request_error")
        return handler(request)

    def _write(self, http: BaseHTTPRequestHandler, response: Response) -> None:
        http.send_response(response.status)
        for name, value in response.headers.items():
            http.send_header(name, value)
        if response.chunks is None:
            payload = response.payload()
            http.send_header("Content-Type", "application/json")
            http.send_header("Content-Length", str(len(payload)))
            http.end_headers()
            http.wfile.write(payload)
            return
        http.send_header("Content-Type", "text/event-stream")
        http.end_headers()
        for chunk in response.chunks:
            http.wfile.write(chunk)
            http.wfile.flush()

    def embeddings(self, request: Request) -> Response:
        """POST /v1/embeddings: hashing vectors, so equal texts get equal vectors and similar ones similar."""
        body = request.json()
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return error(400, "'input' must be a string or a non-empty list of strings", "invalid_request_error")
        model = body.get("model", "")
        dimensions = body.get("dimensions") or MODEL_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
        vectors = HashingEmbedder(self.wrong_dimensions or dimensions).embed(texts)
        data = [
            {"object": "embedding", "index": index, "embedding": _encode(vector, body.get("encoding_format"))}
            for index, vector in enumerate(vectors)
        ]
        if self.reverse_data:
            data.reverse()
        tokens = sum(len(text.split()) for text in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return Response(200, {"object": "list", "data": data, "model": model, "usage": usage})


def _encode(vector: np.ndarray[Any, Any], encoding_format: str | None) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector]
