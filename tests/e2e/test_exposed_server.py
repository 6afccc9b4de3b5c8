"""The README's "A server others can reach", as an operator runs it: an admin key, then `memora serve` bound to
0.0.0.0 with the host name clients use, then the curl of the second block with the key."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.schema import SCHEMA

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port: int = probe.getsockname()[1]
    return port


def block(first: str) -> list[list[str]]:
    """The lines of the README's shell block that starts with FIRST, split as the shell splits them."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (found,) = [b for b in blocks if b.startswith(first)]
    return [shlex.split(line, comments=True) for line in found.splitlines()]


def test_the_exposed_server_block_runs_as_written(fresh_db_url: str) -> None:
    (create, exported, serve) = block("memora key create admin")
    (key_line, curl) = block("export MEMORA_API_KEY=")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORA_")}
    # The suite's schema stays: the database was migrated into it (memora, or ml in the run of `make test` in ml).
    env |= {"MEMORA_DATABASE_URL": fresh_db_url, "MEMORA_DB_SCHEMA": SCHEMA, "PYTHONPATH": str(ROOT)}
    assert exported[0] == "export"
    env |= dict(assignment.split("=", 1) for assignment in exported[1:])
    assert (env["MEMORA_HOST"], serve) == ("0.0.0.0", ["memora", "serve"])

    made = subprocess.run([sys.executable, "-m", "app", *create[1:]], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    key = made.stdout.strip()
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(r"mk_[A-Za-z0-9_-]{43}", key)

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "app", *serve[1:]], env=env | {"MEMORA_PORT": str(port)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and server.poll() is None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        # The second block, from "another machine": its URL's host name goes in the Host header of a loopback call.
        assert key_line == ["export", "MEMORA_API_KEY=mk_..."]
        url = urlsplit(curl[curl.index("-s") + 1])
        header = curl[curl.index("-H") + 1].replace("$MEMORA_API_KEY", key)
        name, value = header.split(": ", 1)
        answer = httpx.get(f"http://127.0.0.1:{port}{url.path}", headers={name: value, "Host": url.netloc})

        assert url.hostname == env["MEMORA_ALLOWED_HOSTS"]
        assert answer.status_code == 200, answer.text
        assert answer.json() == []
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0]
    assert f"on http://0.0.0.0:{port} " in output
    assert key not in output
