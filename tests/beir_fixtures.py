"""The tiny BEIR-format dataset of tests/fixtures/beir, ingested into a fresh database by `memora` as a user runs it
(a pytest plugin: tests take `beir_db` and `beir_engine`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.config import Settings
from app.db.engine import make_engine

BEIR = Path(__file__).resolve().parent / "fixtures" / "beir"
QUERIES, QRELS = BEIR / "queries.jsonl", BEIR / "qrels" / "test.tsv"


def memora(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app", "--database-url", url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.fixture
def beir_db(fresh_db_url: str) -> str:
    """A database whose collection `beir` holds the fixture corpus, embedded by the hashing provider."""
    created = memora(fresh_db_url, "collection", "create", "beir", "--provider", "hashing", "--dimensions", "64")
    ingested = memora(fresh_db_url, "ingest", str(BEIR / "corpus.jsonl"), "--collection", "beir", "--wait")
    assert created.returncode == 0, created.stderr
    assert ingested.returncode == 0, ingested.stderr
    assert "ready: 12" in ingested.stdout
    return fresh_db_url


@pytest.fixture
def beir_engine(beir_db: str) -> Iterator[Engine]:
    engine = make_engine(Settings(database_url=beir_db), "test")
    yield engine
    engine.dispose()
