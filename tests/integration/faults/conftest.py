"""The API served by uvicorn on loopback (keep-alive connections, as clients meet it), on an embedded server of
the test's own that the tests stop, restart and move."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from app.api.serving import listen
from app.config import Settings
from app.db import migrate
from app.db.embedded import EmbeddedPostgres

START_TIMEOUT_S = 60


@dataclass
class Served:
    """An app under uvicorn in a thread: base URL, host and port."""

    url: str
    host: str
    port: int


@pytest.fixture
def embedded_settings(data_dir: Path) -> Settings:
    """Settings on an embedded server in DATA_DIR (any free port, as by default), migrated."""
    settings = Settings(database_url=None, data_dir=data_dir, pg_port=0, worker_poll_seconds=0.2)
    migrate.upgrade(settings)
    return settings


@pytest.fixture
def embedded(embedded_settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(embedded_settings.data_dir)


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], Served]]:
    """serve(app) runs APP under uvicorn on 127.0.0.1 until the test ends."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> Served:
        sockets = listen("127.0.0.1", 0)
        port = sockets[0].getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, name="uvicorn")
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped before it started"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return Served(url=f"http://127.0.0.1:{port}", host="127.0.0.1", port=port)

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_S)
