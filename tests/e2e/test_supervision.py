"""`memora serve` supervises the embedded PostgreSQL: after a kill -9 of the postmaster the server is started again,
with a log line, and the API answers again without being restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.db.embedded import EmbeddedPostgres, EmbeddedServer
from tests.e2e.test_serve import _free_port

pytestmark = pytest.mark.slow

WAIT_S = 120  # a safety net only: each wait ends as soon as what it waits for happens


def _healthz(port: int, until: str) -> httpx.Response | None:
    """/healthz once its status is UNTIL (None if it never was within WAIT_S)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            if response.json()["status"] == until:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return None


def _restarted(data_dir: Path, killed: int) -> EmbeddedServer | None:
    """The embedded server once it runs again in another process than KILLED."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        server = EmbeddedPostgres(data_dir).status()
        if server is not None and server.pid != killed:
            return server
        time.sleep(0.2)
    return None


def test_serve_restarts_the_embedded_server_after_a_kill_9(data_dir: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORA_")}
    env |= {"MEMORA_DATA_DIR": str(data_dir), "MEMORA_PORT": str(port)}
    serve = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--no-worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert _healthz(port, "ok") is not None, "memora serve did not answer"
        killed = EmbeddedPostgres(data_dir).status()
        assert killed is not None
        os.kill(killed.pid, signal.SIGKILL)
        restarted = _restarted(data_dir, killed.pid)
        back = _healthz(port, "ok")  # without a restart of memora serve
        assert serve.poll() is None
    finally:
        serve.send_signal(signal.SIGINT)
        output = serve.communicate(timeout=60)[0]

    assert back is not None, output
    assert restarted is not None, output
    assert back.json()["database"]["address"] == f"127.0.0.1:{restarted.port}"
    assert "is not running; starting it again" in output
    assert f"runs again on 127.0.0.1:{restarted.port} (pid {restarted.pid})" in output
    assert "Traceback" not in output
