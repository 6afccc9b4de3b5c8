"""`memora ingest` and `memora collection` as a user runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import psycopg

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"


def memora(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app", "--database-url", url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_ingest_a_directory_and_again(fresh_db_url: str, tmp_path: Path) -> None:
    for path in FIXTURES.iterdir():
        if "corrupt" not in path.name:
            shutil.copy(path, tmp_path / path.name)
    created = memora(fresh_db_url, "collection", "create", "notes", "--provider", "hashing", "--dimensions", "64")

    first = memora(fresh_db_url, "ingest", str(tmp_path), "--collection", "notes", "--wait")
    second = memora(fresh_db_url, "ingest", str(tmp_path.resolve()) + "/", "--collection", "notes", "--wait")
    listed = memora(fresh_db_url, "collection", "list")

    assert created.returncode == 0, created.stderr
    assert first.returncode == 0, first.stderr
    with psycopg.connect(fresh_db_url) as conn:
        documents = conn.execute("SELECT count(*) FROM memora.document WHERE status = 'ready'").fetchone()
        chunks_with_vectors = conn.execute(
            "SELECT count(*) FROM memora.chunk c JOIN memora.embedding e ON e.chunk_id = c.id"
        ).fetchone()
    assert documents is not None
    assert documents[0] >= 6  # four single-document files and a JSONL file of several
    assert f"{documents[0]} documents new or changed" in first.stdout
    assert f"ready: {documents[0]}" in first.stdout
    assert chunks_with_vectors is not None
    assert chunks_with_vectors[0] >= documents[0]
    assert "0 documents new or changed" in second.stdout
    assert "notes\thashing/hashing\t64d\tready" in listed.stdout


def test_unreadable_files_are_skipped_and_reported(fresh_db_url: str, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "corrupt.pdf", tmp_path / "corrupt.pdf")
    shutil.copy(FIXTURES / "sample.txt", tmp_path / "sample.txt")

    result = memora(fresh_db_url, "ingest", str(tmp_path), "--collection", "notes", "--create")

    assert result.returncode == 1
    assert "skipped" in result.stderr
    assert "corrupt.pdf" in result.stderr
    assert "1 documents new or changed, 1 files skipped" in result.stdout


def test_ingest_into_a_missing_collection_says_so(fresh_db_url: str, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Hello.")

    result = memora(fresh_db_url, "ingest", str(tmp_path / "a.txt"), "--collection", "nowhere")

    assert result.returncode == 1
    assert result.stderr.strip() == "error: no collection named 'nowhere'"
