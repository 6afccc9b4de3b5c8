"""Search from psql: sql/examples/03-search-setup.sql and 04-search.sql, run as docs/sql.md tells a person to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.db.embedded import bin_dir
from tests.sql.test_ingest_examples import EXAMPLES, psql, run_worker

# Written as docs/sql.md tells a psql user to write it: the schema is memora.
pytestmark = pytest.mark.memora_schema


def psql_file_with_memora_on_path(url: str, path: Path) -> str:
    # 04-search.sql runs `memora embed` for its query embedding, as a person's shell would find it.
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["MEMORA_DATABASE_URL"] = url
    result = subprocess.run(
        [str(bin_dir() / "psql"), "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-At", "-F", "|", url, "-f", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_search_examples(fresh_db_url: str) -> None:
    psql(fresh_db_url, "-f", str(EXAMPLES / "03-search-setup.sql"))
    run_worker(fresh_db_url)

    output = psql_file_with_memora_on_path(fresh_db_url, EXAMPLES / "04-search.sql").splitlines()

    # BM25: only the password document has "reset" or "password".
    assert output[0].startswith("reset-password|")
    # Vector search returns every document, ranked 1, 2, 3; hybrid puts the one both retrievers found first.
    vector = [line for line in output if line.count("|") == 2 and line.split("|")[-1] in {"1", "2", "3"}]
    assert len(vector) >= 3
    hybrid = next(line for line in output if line.startswith("reset-password|1|"))
    assert hybrid.split("|")[2] in {"1", "2", "3"}
    # The filter keeps the 2026 security document only.
    assert any(line.startswith("lost-device|") and line.count("|") == 2 for line in output)
    assert "<b>Reset</b>" in output[-1] or "<b>password</b>" in output[-1]


def test_search_functions_with_named_arguments_from_psql(fresh_db_url: str) -> None:
    psql(fresh_db_url, "-f", str(EXAMPLES / "03-search-setup.sql"))
    run_worker(fresh_db_url)

    found = psql(
        fresh_db_url,
        "-c",
        "SELECT external_id FROM memora.search_text('search-demo', 'invoices by card', k => 2, "
        'filter => \'{"document.external_id": {"$ne": "reset-password"}}\')',
    )
    assert found.split() == ["billing-cycle"]

    result = subprocess.run(
        [
            str(bin_dir() / "psql"),
            "--no-psqlrc",
            "-At",
            fresh_db_url,
            "-c",
            "SELECT * FROM memora.search_text('search-demo', 'card', 5, '{\"year\": {\"$near\": 1}}')",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "filter.year.$near: unknown operator" in result.stderr
