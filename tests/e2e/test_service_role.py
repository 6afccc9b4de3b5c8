"""`memora serve` on the embedded default works as its service role, memora_app, not as the superuser: in a new data
directory, and in one that an older Memora made (superuser only, schema at 0006), which it upgrades when it starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from app.config import Settings
from app.db import migrate
from app.db.embedded import EmbeddedPostgres
from tests.e2e.test_serve import _free_port

# Written as a psql user writes it: the schema is memora.
pytestmark = pytest.mark.memora_schema

WHO = """
SELECT current_user, session_user, r.rolsuper, r.rolcreaterole, r.rolcreatedb
FROM pg_roles r WHERE r.rolname = current_user
"""
# Every session of the API and of the worker it runs, as pg_stat_activity names them (make_engine).
SESSIONS = "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name IN ('memora-api', 'memora-worker')"


@pytest.fixture
def serve(data_dir: Path) -> tuple[str, dict[str, str]]:
    """The base URL `memora serve` will answer on for DATA_DIR, and the environment of `memora` commands there."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORA_")}
    env |= {"MEMORA_DATA_DIR": str(data_dir), "MEMORA_PORT": str(port)}
    return f"http://127.0.0.1:{port}", env


def start_serve(base: str, env: dict[str, str]) -> subprocess.Popen[str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.3)
    server.kill()
    raise AssertionError(f"memora serve did not answer: {server.communicate()[0]}")


def stop(server: subprocess.Popen[str]) -> str:
    server.send_signal(signal.SIGINT)
    output = server.communicate(timeout=30)[0]
    assert "Traceback" not in output, output
    return output


def db_url(env: dict[str, str]) -> str:
    command = [sys.executable, "-m", "app", "db", "url"]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout.strip()


def wait_ready(api: str, external_id: str) -> dict[str, object]:
    document: dict[str, object] = {}
    deadline = time.monotonic() + 60  # a safety net, not a bound the test checks
    while document.get("status") != "ready" and time.monotonic() < deadline:
        time.sleep(0.2)
        document = httpx.get(f"{api}/documents/{external_id}").json()
    return document


def use_the_service(base: str, collection: str) -> None:
    """What the API and its worker do, as the service role: create, upload, embed, search, delete."""
    created = httpx.post(
        f"{base}/v1/collections", json={"name": collection, "embedding_provider": "hashing", "dimensions": 32}
    )
    assert created.status_code == 201, created.text
    api = f"{base}/v1/collections/{collection}"
    accepted = httpx.post(f"{api}/documents", json={"external_id": "a", "content": "A fox served and embedded."})
    assert accepted.status_code in (200, 201, 202), accepted.text
    assert wait_ready(api, "a")["status"] == "ready"
    found = httpx.post(f"{api}/search", json={"query": "fox", "k": 3})
    assert found.status_code == 200, found.text
    assert [hit["external_id"] for hit in found.json()["results"]] == ["a"]
    assert httpx.delete(api).status_code == 204
    assert httpx.get(api).status_code == 404


def test_serve_runs_as_its_service_role_not_as_the_superuser(serve: tuple[str, dict[str, str]]) -> None:
    base, env = serve
    server = start_serve(base, env)
    try:
        use_the_service(base, "notes")
        with psycopg.connect(db_url(env)) as conn:
            assert conn.execute(WHO).fetchone() == ("memora_app", "memora_app", False, False, False)
            assert conn.execute(SESSIONS).fetchall() == [("memora_app",)]
            # What the superuser may and the service may not: read server files, touch other databases' roles.
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT pg_read_file('postgresql.conf')")
    finally:
        stop(server)
    assert (Path(env["MEMORA_DATA_DIR"]) / "pg.app-password").stat().st_mode & 0o777 == 0o600


def test_a_data_directory_of_an_older_memora_is_upgraded_and_served_as_the_service_role(
    serve: tuple[str, dict[str, str]],
) -> None:
    base, env = serve
    data_dir = Path(env["MEMORA_DATA_DIR"])
    # As Memora did before 0007: the superuser only, a collection made through it (its partition the superuser's).
    superuser = EmbeddedPostgres(data_dir).ensure_running().url()
    migrate.upgrade(Settings(data_dir=data_dir), "0006", url=superuser)
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions)"
            " VALUES ('old', 'hashing', 'hashing', 32)"
        )
    assert not (data_dir / "pg.app-password").exists()

    server = start_serve(base, env)
    try:
        with psycopg.connect(db_url(env)) as conn:
            assert conn.execute(WHO).fetchone()[:3] == ("memora_app", "memora_app", False)  # type: ignore[index]
        api = f"{base}/v1/collections/old"
        assert httpx.post(f"{api}/documents", json={"external_id": "a", "content": "An old fox."}).is_success
        assert wait_ready(api, "a")["status"] == "ready"
        use_the_service(base, "new")
        assert httpx.delete(api).status_code == 204
    finally:
        stop(server)
