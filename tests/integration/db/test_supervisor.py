"""The supervisor of `memora serve`: a server that is not running is started again; a start that fails is tried
again later and later, and the server runs once it can."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.db.embedded import EmbeddedPostgres
from app.db.supervisor import Supervisor

pytestmark = pytest.mark.slow

WAIT_S = 120  # a safety net only


def _until(done: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_server_that_cannot_start_is_retried_with_a_backoff(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    EmbeddedPostgres(data_dir).ensure_running()
    caplog.set_level(logging.WARNING, logger="app.db.supervisor")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = EmbeddedPostgres(data_dir, port=taken.getsockname()[1])
        server.stop()
        supervisor = Supervisor(server, interval=0.05)
        supervisor.start()
        try:
            failed = _until(lambda: len([r for r in caplog.records if r.levelno == logging.ERROR]) >= 3)
        finally:
            taken.close()  # the port is free again: the next try starts the server
        try:
            restarted = _until(lambda: supervisor.restarts == 1)
        finally:
            supervisor.stop()

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failed
    assert restarted
    assert [r.args[-1] for r in errors[:3]] == [0.1, 0.2, 0.4]
    assert "already in use by another program" in errors[0].getMessage()
    assert server.status() is not None
    assert any("starting it again" in r.getMessage() for r in caplog.records)
