"""Issue 13 case 6 in the CLI: `memora dataset import` and `memora ingest` of a JSONL line nested 3,000 deep say which
line and why, and exit non-zero, with no Python traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEEP_LINE = "[" * 3000 + "]" * 3000


def memora(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app", "--database-url", url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_issue_13_case_6_dataset_import_of_a_line_too_deep_to_parse(fresh_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text(DEEP_LINE + "\n")
    created = memora(fresh_db_url, "dataset", "create", "d", "--task", "classification")

    imported = memora(fresh_db_url, "dataset", "import", "d", str(path))

    assert created.returncode == 0, created.stderr
    assert imported.returncode != 0
    assert "Traceback" not in imported.stderr + imported.stdout
    assert "line 1" in imported.stderr + imported.stdout
    assert "nested too deeply" in imported.stderr + imported.stdout


def test_issue_13_case_6_ingest_of_a_line_too_deep_to_parse(fresh_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "x", "metadata": ' + DEEP_LINE + "}\n")
    created = memora(fresh_db_url, "collection", "create", "notes", "--provider", "hashing", "--dimensions", "64")

    ingested = memora(fresh_db_url, "ingest", str(path), "--collection", "notes")

    assert created.returncode == 0, created.stderr
    assert ingested.returncode != 0
    assert "Traceback" not in ingested.stderr + ingested.stdout
    assert "deep.jsonl line 2: line: JSON nested too deeply to parse" in ingested.stderr + ingested.stdout


def test_issue_13_case_6_ingest_of_metadata_past_the_depth_limit(fresh_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "x", "metadata": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}\n")
    memora(fresh_db_url, "collection", "create", "notes", "--provider", "hashing", "--dimensions", "64")

    ingested = memora(fresh_db_url, "ingest", str(path), "--collection", "notes")

    assert ingested.returncode != 0
    assert "Traceback" not in ingested.stderr + ingested.stdout
    assert "metadata: is nested deeper than 32 levels (MEMORA_MAX_JSON_DEPTH)" in ingested.stderr + ingested.stdout
