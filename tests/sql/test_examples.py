"""sql/examples/, run with psql exactly as the docs tell a person to."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.db.embedded import bin_dir

# Written as docs/sql.md tells a psql user to write it: the schema is memora.
pytestmark = pytest.mark.memora_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "sql" / "examples"


def psql_file(url: str, path: Path) -> str:
    result = subprocess.run(
        [str(bin_dir() / "psql"), "--no-psqlrc", "-v", "ON_ERROR_STOP=1", url, "-f", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_collections_example(fresh_db_url: str) -> None:
    output = psql_file(fresh_db_url, EXAMPLES / "01-collections.sql")

    assert "USING hnsw (((embedding)::halfvec(384)) halfvec_cosine_ops) WITH (m='16', ef_construction='64')" in output
    assert "WITH (m='32', ef_construction='128')" in output
    assert " leave-policy | " in output
    assert " leave-policy |       2" in output  # the update bumped the version


def test_training_example(fresh_db_url: str) -> None:
    output = psql_file(fresh_db_url, EXAMPLES / "05-training.sql")

    assert "INSERT 0 6" in output
    assert " distinct_texts | examples" in output
    assert "              5 |        6" in output  # two spellings of one message share a text_hash
    assert " v1   |        6 |" in output
    changes = [line.split("|") for line in output.splitlines() if line.strip().startswith(("added", "removed"))]
    assert [(c[0].strip(), c[3].strip()) for c in changes] == [
        ("removed", "ok lar...   joking wif u ONI..."), ("added", "Call me when you get this"),
    ]  # fmt: skip
    shuffled = [line for line in output.splitlines() if line.strip()[:1].isdigit() and "|" in line][-6:]
    assert sorted(int(line.split("|")[0]) for line in shuffled) == list(range(6))
