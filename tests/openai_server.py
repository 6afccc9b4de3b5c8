"""A small OpenAI-compatible HTTP server on 127.0.0.1 for tests, with programmable failures.

Routes live in a table keyed by (method, path); a path may hold `{name}` parts, which reach the handler in
Request.params. More endpoints are added with `server.route(...)`. A handler takes the parsed Request and returns a
Response; a Response with `chunks` is streamed (server-sent events) instead of sent with a Content-Length. Built
in: /v1/embeddings, /v1/files with /v1/fine_tuning/jobs (FineTuning, below), and /v1/chat/completions, whole or
streamed, with scripted replies and failures mid-stream (Chat, below).
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import itertools
import json
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

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
    params: dict[str, str] = field(default_factory=dict)
    # Set once the server has written its answer (or found the client gone): a test that times out before then
    # can say so without timing anything.
    answered: threading.Event = field(default_factory=threading.Event, compare=False)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, tuple[str | None, bytes]]:
        """The fields of a multipart/form-data body (files and plain fields alike): name -> (filename, bytes)."""
        head = f"Content-Type: {self.headers.get('content-type', '')}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + self.body)
        if not message.is_multipart():
            return {}
        return {
            str(part.get_param("name", header="content-disposition")): (
                part.get_filename(),
                part.get_payload(decode=True) or b"",
            )
            for part in message.iter_parts()  # type: ignore[attr-defined]
        }


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


def error(
    status: int,
    message: str,
    kind: str = "server_error",
    headers: dict[str, str] | None = None,
    *,
    param: str | None = None,
    code: str | None = None,
) -> Response:
    """An error in the shape OpenAI sends."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return Response(status, body, headers or {})


@dataclass
class Fault:
    """What the next matching request meets instead of the route: a status, or a delay before the route answers."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str | None = None


Handler = Callable[[Request], Response]


class DropConnection(Exception):
    """Raised by a Response's chunks to end the stream with a TCP reset instead of its last bytes."""


class OpenAIServer:
    """Start with start() (or a with block); base_url is what openai.OpenAI(base_url=...) takes."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[Request] = []
        self.routes: dict[tuple[str, str], Handler] = {("POST", "/v1/embeddings"): self.embeddings}
        self.fine_tuning = FineTuning()
        self.fine_tuning.install(self)
        self.chat = Chat(self)
        self.chat.install(self)
        self.faults: deque[Fault] = deque()
        # Seconds every request waits before it is answered: a provider's fixed time per call.
        self.latency = 0.0
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
        request = Request(http.command, path, {k.lower(): v for k, v in http.headers.items()}, _read_body(http))
        with self._lock:
            self.requests.append(request)
            fault = next((f for f in self.faults if f.path in (None, path)), None)
            if fault is not None:
                self.faults.remove(fault)
        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
        if self.latency:
            self._stopping.wait(self.latency)
        response = self._answer(request, fault)
        # A client that gave up (its timeout) is what a delay tests.
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._write(http, response)
        finally:
            request.answered.set()

    def _answer(self, request: Request, fault: Fault | None) -> Response:
        if fault is not None and fault.status is not None:
            return error(fault.status, f"injected failure {fault.status}", headers=fault.headers)
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return error(401, "Incorrect API key provided.", "invalid_request_error")
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            for (method, pattern), candidate in self.routes.items():
                if method == request.method and "{" in pattern and (match := _path_match(pattern, request.path)):
                    handler, request.params = candidate, match
                    break
            else:
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
        # HTTP/1.0: the stream ends when the connection closes. Closing the iterator tells it whether it got to
        # its end or the client went away first (the write raised).
        chunks = iter(response.chunks)
        try:
            for chunk in chunks:
                http.wfile.write(chunk)
                http.wfile.flush()
        except DropConnection:
            http.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def embeddings(self, request: Request) -> Response:
        """POST /v1/embeddings: hashing vectors, so equal texts get equal vectors and similar ones similar."""
        body = request.json()
        texts = embedding_inputs(request)
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


def embedding_inputs(request: Request) -> Any:
    """The texts a /v1/embeddings REQUEST asked for, as a list when they are well formed."""
    inputs = request.json().get("input")
    return [inputs] if isinstance(inputs, str) else inputs


def _read_body(http: BaseHTTPRequestHandler) -> bytes:
    """The request body, sent with a Content-Length or in chunks (Transfer-Encoding: chunked)."""
    if "chunked" not in (http.headers.get("Transfer-Encoding") or "").lower():
        return http.rfile.read(int(http.headers.get("Content-Length") or 0))
    parts = []
    while size := int(http.rfile.readline().split(b";")[0].strip() or b"0", 16):
        parts.append(http.rfile.read(size))
        http.rfile.readline()
    while http.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
        pass
    return b"".join(parts)


def _path_match(pattern: str, path: str) -> dict[str, str] | None:
    """The {name} parts of PATTERN in PATH, or None when PATH does not have that shape."""
    regex = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(pattern))
    match = re.fullmatch(regex, path)
    return match.groupdict() if match else None


def _encode(vector: np.ndarray[Any, Any], encoding_format: str | None) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector]


STEPS = ("validating_files", "queued", "running", "succeeded")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int = field(default_factory=lambda: int(time.time()))

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.content), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed"}  # fmt: skip


def chat_file_problem(content: bytes) -> str | None:
    """Why CONTENT is not a chat fine-tuning file (one JSON object with a "messages" list per line), or None."""
    lines = content.splitlines()
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            return f"Invalid file format. Line {number} is not valid JSON."
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or not messages:
            return f'Invalid file format. Line {number}, key "messages": a non-empty list is required.'
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant", "tool"):
                return f"Invalid file format. Line {number}: every message needs a role."
    return None if lines else "Invalid file format. The file is empty."


def trained_tokens(content: bytes, epochs: int) -> int:
    """Words of every message content, times the epochs: what the loopback service reports as trained tokens."""
    words = 0
    for line in content.splitlines():
        for message in json.loads(line)["messages"]:
            words += len(str(message.get("content") or "").split())
    return words * epochs


class FineTuning:
    """/v1/files and /v1/fine_tuning/jobs held in memory. Each GET of a job advances it one step
    (validating_files -> queued -> running -> succeeded), so a poller sees it move; fail_next_job() makes the next
    job created end in failed. Like OpenAI, a job needs MIN_EXAMPLES training lines."""

    MIN_EXAMPLES = 10

    def __init__(self) -> None:
        self.files: dict[str, StoredFile] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.failures: deque[str] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def install(self, server: OpenAIServer) -> None:
        for method, path, handler in (
            ("POST", "/v1/files", self.upload),
            ("GET", "/v1/files/{file_id}", self.get_file),
            ("DELETE", "/v1/files/{file_id}", self.delete_file),
            ("POST", "/v1/fine_tuning/jobs", self.create_job),
            ("GET", "/v1/fine_tuning/jobs", self.list_jobs),
            ("GET", "/v1/fine_tuning/jobs/{job_id}", self.get_job),
            ("POST", "/v1/fine_tuning/jobs/{job_id}/cancel", self.cancel_job),
        ):
            server.route(method, path, handler)

    def fail_next_job(self, message: str = "The job failed: the training loss diverged.") -> None:
        self.failures.append(message)

    def upload(self, request: Request) -> Response:
        form = request.form()
        if "file" not in form or "purpose" not in form:
            return error(400, "'file' and 'purpose' are required", "invalid_request_error", param="file")
        (filename, content), purpose = form["file"], form["purpose"][1].decode()
        if purpose == "fine-tune" and (problem := chat_file_problem(content)):
            return error(400, problem, "invalid_request_error", param="file", code="invalid_file_format")
        with self._lock:
            stored = StoredFile(f"file-{next(self._ids)}", filename or "upload", purpose, content)
            self.files[stored.id] = stored
        return Response(200, stored.json())

    def get_file(self, request: Request) -> Response:
        stored = self.files.get(request.params["file_id"])
        return Response(200, stored.json()) if stored else _missing("file", request.params["file_id"])

    def delete_file(self, request: Request) -> Response:
        with self._lock:
            stored = self.files.pop(request.params["file_id"], None)
        if stored is None:
            return _missing("file", request.params["file_id"])
        return Response(200, {"id": stored.id, "object": "file", "deleted": True})

    def create_job(self, request: Request) -> Response:
        body = request.json()
        training, validation = body.get("training_file"), body.get("validation_file")
        for name, file_id in (("training_file", training), ("validation_file", validation)):
            if (file_id is not None or name == "training_file") and file_id not in self.files:
                return error(400, f"invalid {name}: {file_id}", "invalid_request_error", param=name)
        if not body.get("model"):
            return error(400, "'model' is required", "invalid_request_error", param="model")
        if len(body.get("suffix") or "") > 64:
            return error(400, "suffix: at most 64 characters", "invalid_request_error", param="suffix")
        examples = len(self.files[training].content.splitlines())
        if examples < self.MIN_EXAMPLES:
            message = f"Training file has {examples} example(s), but must have at least {self.MIN_EXAMPLES} examples"
            return error(400, message, "invalid_request_error", param="training_file", code="invalid_n_examples")
        method = (body.get("method") or {}).get("supervised") or {}
        hyperparameters = method.get("hyperparameters") or body.get("hyperparameters") or {}
        epochs = int(hyperparameters.get("n_epochs") or 1)
        with self._lock:
            job_id = f"ftjob-{next(self._ids)}"
            self.jobs[job_id] = {
                "id": job_id, "object": "fine_tuning.job", "created_at": int(time.time()), "error": None,
                "fine_tuned_model": None, "finished_at": None, "hyperparameters": {"n_epochs": epochs},
                "model": body["model"], "organization_id": "org-loopback", "result_files": [], "seed": 0,
                "status": STEPS[0], "trained_tokens": None, "training_file": training, "validation_file": validation,
                "suffix": body.get("suffix"), "_failure": self.failures.popleft() if self.failures else None,
            }  # fmt: skip
        return Response(200, self._public(self.jobs[job_id]))

    def list_jobs(self, request: Request) -> Response:
        data = [self._public(job) for job in reversed(self.jobs.values())]
        return Response(200, {"object": "list", "data": data, "has_more": False})

    def get_job(self, request: Request) -> Response:
        with self._lock:
            job = self.jobs.get(request.params["job_id"])
            if job is None:
                return _missing("fine-tuning job", request.params["job_id"])
            if job["status"] not in TERMINAL:
                self._advance(job)
            return Response(200, self._public(job))

    def cancel_job(self, request: Request) -> Response:
        with self._lock:
            job = self.jobs.get(request.params["job_id"])
            if job is None:
                return _missing("fine-tuning job", request.params["job_id"])
            if job["status"] in TERMINAL:
                return error(400, f"Job has already {job['status']}", "invalid_request_error")
            job["status"] = "cancelled"
            return Response(200, self._public(job))

    def _advance(self, job: dict[str, Any]) -> None:
        step = STEPS[STEPS.index(job["status"]) + 1]
        if step == "succeeded" and job["_failure"]:
            job["status"], job["error"] = "failed", {"code": "job_failed", "message": job["_failure"], "param": None}
        elif step == "succeeded":
            content = self.files[job["training_file"]].content
            suffix = job["suffix"] or "personal"
            job["status"], job["fine_tuned_model"] = step, f"ft:{job['model']}:{suffix}:{job['id']}"
            job["trained_tokens"] = trained_tokens(content, job["hyperparameters"]["n_epochs"])
            job["result_files"] = []
        else:
            job["status"] = step
        if job["status"] in TERMINAL:
            job["finished_at"] = int(time.time())

    @staticmethod
    def _public(job: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in job.items() if not key.startswith("_")}


def _missing(kind: str, name: str) -> Response:
    return error(404, f"No such {kind}: {name}", "invalid_request_error")


CHAT_MODELS = frozenset({"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-3.5-turbo"})
Failure = Literal["error", "drop", "stall"]


@dataclass
class ChatRecord:
    """One streamed reply: how far it got, and how it ended (finished, aborted by the client, failed on purpose)."""

    model: str
    pieces: int
    sent: int = 0
    outcome: Literal["streaming", "finished", "aborted", "failed"] = "streaming"
    ended: threading.Event = field(default_factory=threading.Event)


@dataclass
class MidStreamFault:
    after: int
    how: Failure
    seconds: float = 0.0
    message: str = "The server had an error while processing your request."


class Chat:
    """POST /v1/chat/completions. The reply is the next scripted one (reply()), else one citing every numbered
    source of the prompt ("[1]" at a line's start) or "I do not know." when there is none. Streamed, it comes a
    word per chunk in OpenAI's chunk format, usage in a last chunk when stream_options.include_usage, chunk_delay
    seconds apart; fail_mid_stream() breaks the next stream after some chunks. Unknown models get OpenAI's 404."""

    def __init__(self, server: OpenAIServer) -> None:
        self.models = set(CHAT_MODELS)
        self.replies: deque[str] = deque()
        self.refusals: deque[Response] = deque()
        self.mid_stream: deque[MidStreamFault] = deque()
        self.chunk_delay = 0.0
        self.streams: list[ChatRecord] = []
        self._server = server
        self._ids = itertools.count(1)

    def install(self, server: OpenAIServer) -> None:
        server.route("POST", "/v1/chat/completions", self.completions)

    def reply(self, *texts: str) -> None:
        """The next replies, in order."""
        self.replies.extend(texts)

    def refuse_next(self, status: int, message: str, *, code: str | None = None) -> None:
        """The next chat request gets this error, in OpenAI's shape."""
        self.refusals.append(error(status, message, "invalid_request_error", code=code))

    def fail_mid_stream(
        self, after: int = 2, how: Failure = "error", *, seconds: float = 5.0, message: str | None = None
    ) -> None:
        """The next stream sends AFTER content chunks, then: an error event with MESSAGE (error), a TCP reset
        (drop), or silence for SECONDS before it carries on (stall)."""
        fault = MidStreamFault(after, how, seconds)
        if message is not None:
            fault.message = message
        self.mid_stream.append(fault)

    def completions(self, request: Request) -> Response:
        body = request.json()
        if self.refusals:
            return self.refusals.popleft()
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return error(400, "'messages' must be a non-empty array of messages", "invalid_request_error",
                         param="messages")  # fmt: skip
        if model not in self.models:
            return error(404, f"The model `{model}` does not exist or you do not have access to it.",
                         "invalid_request_error", code="model_not_found")  # fmt: skip
        text = self.replies.popleft() if self.replies else _default_reply(messages)
        pieces = re.findall(r"\S+\s*|\s+", text)
        prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in messages)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces),
                 "total_tokens": prompt_tokens + len(pieces)}  # fmt: skip
        completion_id, created = f"chatcmpl-{next(self._ids)}", int(time.time())
        if not body.get("stream"):
            message = {"role": "assistant", "content": text, "refusal": None}
            return Response(200, {
                "id": completion_id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
                "usage": usage,
            })  # fmt: skip
        record = ChatRecord(model, len(pieces))
        self.streams.append(record)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        fault = self.mid_stream.popleft() if self.mid_stream else None
        head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return _sse({**head, "choices": [choice], **extra})

        def chunks() -> Iterable[bytes]:
            try:
                yield chunk({"role": "assistant", "content": ""})
                for index, piece in enumerate(pieces):
                    if fault is not None and index == fault.after:
                        if fault.how == "error":
                            record.outcome = "failed"
                            yield _sse({"error": {"message": fault.message, "type": "server_error", "param": None,
                                                  "code": None}})  # fmt: skip
                            return
                        if fault.how == "drop":
                            record.outcome = "failed"
                            raise DropConnection
                        self._server._stopping.wait(fault.seconds)
                    if self.chunk_delay:
                        self._server._stopping.wait(self.chunk_delay)
                    yield chunk({"content": piece})
                    record.sent += 1
                yield chunk({}, "stop")
                if include_usage:
                    yield _sse({**head, "choices": [], "usage": usage})
                yield b"data: [DONE]\n\n"
                record.outcome = "finished"
            except GeneratorExit:
                record.outcome = "aborted"
                raise
            finally:
                record.ended.set()

        return Response(200, chunks=chunks())


def _sse(data: Any) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def _default_reply(messages: list[dict[str, Any]]) -> str:
    """A reply that cites every numbered source of the last user message, or says it does not know."""
    users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
    numbers = re.findall(r"^\[(\d+)\]", users[-1] if users else "", re.MULTILINE)
    if not numbers:
        return "I do not know."
    return "The sources answer this " + "".join(f"[{n}]" for n in numbers) + "."
