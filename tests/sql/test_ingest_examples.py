"""Documents written with psql get chunked and embedded by a `memora worker` with no other step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from app.db.embedded import bin_dir

# Written as docs/sql.md tells a psql user to write it: the schema is memora.
pytestmark = pytest.mark.memora_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "sql" / "examples"


def psql(url: str, *args: str) -> str:
    result = subprocess.run(
        [str(bin_dir() / "psql"), "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-At", url, *args],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_worker(url: str) -> None:
    command = [sys.executable, "-m", "app", "--database-url", url, "worker", "--until-empty"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_insert_then_update_from_psql(fresh_db_url: str) -> None:
    inserted = psql(fresh_db_url, "-f", str(EXAMPLES / "02-ingest.sql"))
    assert "onboarding|pending|1" in inserted

    run_worker(fresh_db_url)
    headings = psql(
        fresh_db_url,
        "-c",
        "SELECT c.metadata->'headings' FROM memora.chunk c JOIN memora.document d ON d.id = c.document_id "
        "WHERE d.external_id = 'onboarding' ORDER BY c.ordinal",
    )
    assert '"First day"' in headings
    assert '"First week"' in headings

    psql(
        fresh_db_url,
        "-c",
        "UPDATE memora.document SET content = 'Replaced by plain text.' WHERE external_id = 'onboarding'",
    )
    run_worker(fresh_db_url)

    with psycopg.connect(fresh_db_url) as conn:
        rows = conn.execute(
            "SELECT d.status, d.version, c.text, e.model FROM memora.document d "
            "JOIN memora.chunk c ON c.document_id = d.id JOIN memora.embedding e ON e.chunk_id = c.id"
        ).fetchall()
    assert rows == [("ready", 2, "Replaced by plain text.", "hashing")]
