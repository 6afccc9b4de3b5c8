"""`memora serve` where keys are required, as an operator starts it: it refuses to start without an admin key,
serves with one and never writes a key to its logs; open to others (MEMORA_AUTH=off), it warns at start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.orm import Session

from app.auth import keys
from app.auth.principal import Role
from app.config import Settings
from app.db.engine import make_engine

REFUSAL = (
    "error: API keys are required (MEMORA_AUTH=required) and there is no live admin key: make one with "
    "`memora key create NAME --role admin`, or set MEMORA_AUTH=off to serve without keys"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _env(url: str, port: int, **extra: str) -> dict[str, str]:
    return {**os.environ, "MEMORA_DATABASE_URL": url, "MEMORA_PORT": str(port), **extra}


def _add_keys(url: str, *specs: tuple[str, Role, str]) -> dict[str, str]:
    """Keys committed in URL's database, by name: (name, role, state) with state live, expired or revoked."""
    settings = Settings(database_url=url)
    engine = make_engine(settings, "test")
    secrets = {}
    with Session(engine) as db:
        for name, role, state in specs:
            new = keys.create(db, settings, name, role)
            secrets[name] = new.secret
            if state == "expired":
                new.row.expires_at = datetime.now(UTC) - timedelta(minutes=1)
            elif state == "revoked":
                keys.revoke(db, name)
        db.commit()
    engine.dispose()
    return secrets


@contextmanager
def _serving(env: dict[str, str], *args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`memora serve ARGS` until the block ends (Ctrl-C); the output, stdout and stderr together, in the list."""
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--no-worker", "--no-migrate", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output: list[str] = []
    try:
        yield server, output
    finally:
        server.send_signal(signal.SIGINT)
        output.append(server.communicate(timeout=30)[0])


def _wait(server: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and server.poll() is None:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.3)
    raise AssertionError("memora serve did not answer")


def test_serve_refuses_to_start_without_a_live_admin_key(fresh_db_url: str) -> None:
    _add_keys(fresh_db_url, ("reader", Role.read, "live"), ("old", Role.admin, "expired"),
              ("gone", Role.admin, "revoked"))  # fmt: skip
    port = _free_port()

    served = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--no-worker", "--no-migrate"],
        env=_env(fresh_db_url, port, MEMORA_AUTH="required"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert served.returncode == 1
    assert served.stderr.splitlines() == [REFUSAL]
    assert served.stdout == ""
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens


def test_serve_with_an_admin_key_serves_and_logs_no_key(fresh_db_url: str) -> None:
    secrets = _add_keys(fresh_db_url, ("root", Role.admin, "live"), ("reader", Role.read, "revoked"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"

    with _serving(_env(fresh_db_url, port, MEMORA_AUTH="required", MEMORA_LOG_LEVEL="debug")) as (server, output):
        _wait(server, f"{base}/healthz")
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{base}/v1/collections").status_code == 401
        as_root = {"Authorization": f"Bearer {secrets['root']}"}
        assert httpx.get(f"{base}/v1/collections", headers=as_root).status_code == 200
        assert httpx.get(f"{base}/v1/collections/nothing", headers={"X-API-Key": secrets["root"]}).status_code == 404
        assert httpx.get(f"{base}/v1/datasets", headers={"X-API-Key": secrets["reader"]}).status_code == 401

    log = output[0]
    assert "GET /v1/collections/nothing HTTP/1.1" in log  # the access log names paths
    for secret in secrets.values():
        assert secret not in log
        assert secret[: keys.PREFIX_CHARS + 4] not in log  # nor a part past the prefix
    assert "Bearer" not in log
    assert "Traceback" not in log


def test_serve_open_to_others_warns_at_start(fresh_db_url: str) -> None:
    port = _free_port()

    with _serving(_env(fresh_db_url, port, MEMORA_AUTH="off"), "--host", "0.0.0.0") as (server, output):
        _wait(server, f"http://127.0.0.1:{port}/healthz")
        assert httpx.get(f"http://127.0.0.1:{port}/v1/collections").status_code == 200  # no key needed

    warnings = [line for line in output[0].splitlines() if "MEMORA_AUTH=off" in line]
    assert len(warnings) == 1
    assert "WARNING" in warnings[0]
    assert "0.0.0.0, an address others can reach" in warnings[0]
