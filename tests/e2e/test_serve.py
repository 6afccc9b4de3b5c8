"""The README's first command, as a user runs it: `memora serve` on the embedded default."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app import __version__
from app.api.serving import listen
from app.db.embedded import bin_dir
from app.errors import AppError


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_serve_on_the_embedded_default(data_dir: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORA_")}
    env |= {"MEMORA_DATA_DIR": str(data_dir), "MEMORA_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        health = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert health is not None, "memora serve did not answer"
        assert health.status_code == 200, health.text
        assert health.json()["database"]["embedded"] is True
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200

        url = subprocess.run(
            [sys.executable, "-m", "app", "db", "url"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        tables = subprocess.run(
            [str(bin_dir() / "psql"), "--no-psqlrc", url, "-c", r"\dt memora.*"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for table in ("collection", "document", "chunk", "embedding", "dataset", "example"):
            assert f"| {table} " in tables

        # The worker inside `memora serve` picks up what the API accepts.
        api = f"http://127.0.0.1:{port}/v1/collections"
        assert httpx.post(api, json={"name": "notes"}).status_code == 201  # the local MiniLM model
        accepted = httpx.post(f"{api}/notes/documents", json={"external_id": "a", "content": "Served and embedded."})
        assert accepted.json()["documents"][0]["status"] == "pending"
        document: dict[str, object] = {}
        deadline = time.monotonic() + 60
        while document.get("status") != "ready" and time.monotonic() < deadline:
            time.sleep(0.2)
            document = httpx.get(f"{api}/notes/documents/a").json()
        assert document["status"] == "ready", document
        assert document["chunk_count"] == 1
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C
        output = server.communicate(timeout=30)[0]
    assert f"Memora {__version__} on http://127.0.0.1:{port} " in output
    assert "Application shutdown complete." in output
    assert "Traceback" not in output


@pytest.mark.parametrize("reuse_address", [False, True], ids=["other-program", "other-server"])
def test_serve_on_a_busy_port_says_which_setting_changes_it(reuse_address: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORA_")}
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse_address))  # as uvicorn binds, e.g.
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env |= {"MEMORA_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/nothing", "MEMORA_PORT": str(port)}
        served = subprocess.run(
            [sys.executable, "-m", "app", "serve", "--no-migrate", "--no-worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert served.returncode == 1
    assert served.stderr.splitlines() == [
        f"error: cannot serve on 127.0.0.1:{port}: the port is in use; choose another with --port or MEMORA_PORT"
    ]
    assert served.stdout == ""


def test_an_address_of_another_machine_names_the_host_setting() -> None:
    with pytest.raises(AppError) as caught:
        listen("192.0.2.1", _free_port())  # TEST-NET-1: documentation only, never an address of this machine

    assert "not an address of this machine" in caught.value.message
    assert "--host or MEMORA_HOST" in caught.value.message


def test_listen_binds_every_address_of_a_name() -> None:
    port = _free_port()
    sockets = listen("localhost", port)
    try:
        assert {sock.getsockname()[1] for sock in sockets} == {port}
        assert "127.0.0.1" in {sock.getsockname()[0] for sock in sockets}
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # accepted into the backlog: the socket listens before uvicorn takes it
    finally:
        for sock in sockets:
            sock.close()
