"""`memora serve` with MEMORA_LOG_FORMAT=json, as an operator runs it: every log line is a JSON object, and the
access log's line for a request carries the X-Request-ID the response returned."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_serve_writes_json_lines_with_the_request_id(fresh_db_url: str) -> None:
    port = _free_port()
    env = {**os.environ, "MEMORA_DATABASE_URL": fresh_db_url, "MEMORA_PORT": str(port), "MEMORA_LOG_FORMAT": "json"}
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--no-worker", "--no-migrate"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        answer = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and server.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/v1/status", headers={"X-Request-ID": "e2e-7"}, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert answer is not None, "memora serve did not answer"
        assert answer.status_code == 200
        assert answer.headers["X-Request-ID"] == "e2e-7"
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[1]

    banner, *lines = output.splitlines()
    assert banner.startswith("Memora ")  # said before logging is set up, for a person
    records = [json.loads(line) for line in lines]  # each line is JSON
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert [r["request_id"] for r in access] == ["e2e-7"]
    assert "GET /v1/status" in access[0]["message"]
    assert {r["level"] for r in records} <= {"debug", "info", "warning", "error", "critical"}
    assert any(r["message"] == "Application startup complete." for r in records)
