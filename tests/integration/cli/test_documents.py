"""`memora ingest` and `memora collection` as a user runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from app.config import Settings
from app.db.engine import make_engine
from app.db.query import Query

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"


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
    engine = make_engine(Settings(database_url=fresh_db_url), "test")
    with engine.connect() as conn:
        documents = Query("SELECT count(*) FROM memora.document WHERE status = 'ready'").run(conn).scalar_one()
        chunks_with_vectors = (
            Query("SELECT count(*) FROM memora.chunk c JOIN memora.embedding e ON e.chunk_id = c.id")
            .run(conn)
            .scalar_one()
        )
    engine.dispose()
    assert documents >= 6  # four single-document files and a JSONL file of several
    assert f"{documents} documents new or changed" in first.stdout
    assert f"ready: {documents}" in first.stdout
    assert chunks_with_vectors >= documents
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
