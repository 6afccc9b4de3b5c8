"""`memora status` as an operator runs it: a table, or --json equal to GET /v1/status."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from fastapi.testclient import TestClient

from app.api.main import create_app
from app.config import Settings
from app.db.engine import make_engine
from tests.integration.cli.test_documents import memora
from tests.integration.observe.helpers import seed


def without_clock(body: dict[str, object]) -> dict[str, object]:
    """BODY without what moves with the clock between two reads."""
    body = {key: value for key, value in body.items() if key != "at"}
    for part in [body["queue"], *body["collections"]]:  # type: ignore[list-item]
        part.pop("oldest_pending_seconds")  # type: ignore[union-attr]
    return body


def test_status_json_equals_the_api(fresh_db_url: str) -> None:
    engine = make_engine(Settings(database_url=fresh_db_url), "test")
    seed(engine)
    engine.dispose()

    result = memora(fresh_db_url, "status", "--json", "--errors", "3")
    with TestClient(create_app(Settings(database_url=fresh_db_url))) as client:
        api = client.get("/v1/status", params={"errors": 3}).json()

    assert result.returncode == 0, result.stderr
    cli = json.loads(result.stdout)
    assert without_clock(cli) == without_clock(api)
    assert cli["queue"]["pending"] == 3


def test_status_prints_the_queue_and_the_last_errors(fresh_db_url: str) -> None:
    engine = make_engine(Settings(database_url=fresh_db_url), "test")
    seed(engine)
    engine.dispose()

    command = [sys.executable, "-m", "app", "--database-url", fresh_db_url, "status"]
    wide = {**os.environ, "COLUMNS": "200"}  # rich wraps the errors to the terminal's width, 80 in a pipe
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=wide)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:5] == ["│", "secret-alpha", "│", "2", "│"] for line in lines), result.stdout
    assert "leases: 1 held, 1 expired" in result.stdout
    assert "failures: 1 failed, 1 awaiting a retry" in result.stdout
    assert "HTTP 401: bad key" in result.stdout


def test_status_exits_1_when_the_database_does_not_answer() -> None:
    result = memora("postgresql://nobody@127.0.0.1:9/nothing", "status")

    assert result.returncode == 1
    assert "database: unreachable" in result.stdout
