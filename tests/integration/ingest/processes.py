"""Workers as `memora worker` processes, for the tests (and benchmarks) that start, kill and stop them: starting one,
the test database's SQL, documents to ingest, who asked the loopback provider for what, and what a complete,
duplicate-free ingestion looks like in the tables."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import psycopg

from app.config import Settings
from app.db.query import in_schema
from app.embeddings.hashing import HashingEmbedder
from app.ingest.pipeline import embedding_input
from tests.openai_server import OpenAIServer, embedding_inputs

REPO_ROOT = Path(__file__).resolve().parents[3]  # where `python -m app` finds this checkout's app/
SCHEMA = Settings().db_schema  # the schema tests/conftest.py builds the test database in
TEXT = "\n\n".join(f"Section {i}: the worker embeds this paragraph about subject {i}." for i in range(6))


def worker_process(url: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """`memora worker ARGS` on the database at URL, with ENV added to the environment.

    An OPENAI_ORG_ID in ENV labels the worker at the provider: the openai client sends it as the OpenAI-Organization
    header (read back by embedding_calls)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MEMORA_")} | {"MEMORA_DB_SCHEMA": SCHEMA}
    environment |= env
    return subprocess.Popen(
        [sys.executable, "-m", "app", "--database-url", url, "worker", *args],
        env=environment,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def execute(url: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """STATEMENT, naming memora.<object> as psql users do, run in the test database's schema."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(in_schema(statement, SCHEMA), params)
        return cursor.fetchall() if cursor.description else []


def insert_documents(url: str, documents: Sequence[tuple[str, str, str]], collection: str = "docs") -> None:
    """DOCUMENTS, (external_id, title, content), into COLLECTION in one statement: workers that are listening wake
    to all of them at once, and claim side by side."""
    execute(
        url,
        "INSERT INTO memora.document (collection_id, external_id, title, content) "
        "SELECT c.id, d.external_id, d.title, d.content FROM memora.collection c, "
        "unnest(%s::text[], %s::text[], %s::text[]) AS d(external_id, title, content) WHERE c.name = %s",
        (*(list(column) for column in zip(*documents, strict=True)), collection),
    )


def add_documents(
    url: str, count: int, collection: str = "docs", start: int = 0, *, own_sections: bool = False
) -> None:
    """Documents doc-START.. of TEXT's sections; with OWN_SECTIONS each section names its document, so no two
    documents share a chunk (nor a vector), and every text the provider is asked for belongs to one document."""
    documents = []
    for i in range(start, start + count):
        sections = (
            "\n\n".join(f"Section {j} of document {i}: the worker embeds this paragraph." for j in range(6))
            if own_sections
            else TEXT
        )
        documents.append((f"doc-{i}", "", f"Document {i}.\n\n{sections}"))
    insert_documents(url, documents, collection)


def openai_collection(url: str, server: OpenAIServer) -> dict[str, str]:
    """Collection 'docs', embedded by the loopback OpenAI-compatible SERVER; the worker's environment for it."""
    execute(
        url,
        "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions, chunking) "
        "VALUES ('docs', 'openai', 'text-embedding-3-small', 64, %s)",
        ('{"strategy": "recursive", "size": 16, "overlap": 0}',),
    )
    return {"MEMORA_OPENAI_BASE_URL": server.base_url, "MEMORA_OPENAI_API_KEY": "sk-test-secret"}


def embedding_calls(server: OpenAIServer) -> list[tuple[str, float, list[str]]]:
    """(the worker's OPENAI_ORG_ID, when, the texts) of every embedding call SERVER received, in order."""
    return [
        (request.headers.get("openai-organization", ""), request.received_at, embedding_inputs(request))
        for request in server.requests_to("/v1/embeddings")
    ]


def listening_workers(url: str) -> int:
    """How many workers wait for work on the database at URL (their LISTEN connections)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE application_name = 'memora-worker-listen' AND datname = current_database()"
    )
    return int(execute(url, query)[0][0])


def wait_for(condition: Callable[[], object], timeout: float = 30) -> None:
    """Until CONDITION holds; the timeout is a safety net for a stuck test, not a bound the test checks."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def assert_complete_without_duplicates(url: str, expected_documents: int) -> None:
    """EXPECTED_DOCUMENTS documents, all ready, each with chunks numbered 0..n-1 once, one vector each, and spans
    that are the chunks' text."""
    rows = execute(
        url,
        "SELECT d.status, count(c.id), count(DISTINCT c.ordinal), max(c.ordinal) + 1, count(e.chunk_id), "
        "bool_and(substr(d.content, c.char_start + 1, c.char_end - c.char_start) = c.text) "
        "FROM memora.document d JOIN memora.chunk c ON c.document_id = d.id "
        "LEFT JOIN memora.embedding e ON e.chunk_id = c.id GROUP BY d.id, d.status",
    )
    assert len(rows) == expected_documents
    for status, chunks, ordinals, last, vectors, spans_match in rows:
        assert status == "ready"
        assert chunks == ordinals == last == vectors
        assert spans_match


def assert_vectors_are_the_providers(url: str) -> None:
    """Every chunk has one vector, of its collection's active embedding version, and it is the one the loopback
    server gives for the chunk's text (hashing vectors, tests/openai_server.py): no vector went to another chunk."""
    rows = execute(
        url,
        "SELECT c.collection_id, c.id, c.title, c.text, k.dimensions, k.active_version, e.version, "
        "e.embedding::real[] FROM memora.chunk c JOIN memora.collection k ON k.id = c.collection_id "
        "LEFT JOIN memora.embedding e ON e.collection_id = c.collection_id AND e.chunk_id = c.id",
    )
    assert rows
    assert Counter((row[0], row[1]) for row in rows).most_common(1)[0][1] == 1  # one vector per chunk
    for _, _, title, text, dimensions, active, version, vector in rows:
        assert version == active
        expected = HashingEmbedder(dimensions).embed([embedding_input(title, text)])[0]
        assert np.array_equal(np.asarray(vector, dtype=np.float32), expected), text


def assert_statistics_match_a_recount(url: str) -> None:
    """The BM25 statistics and postings the triggers keep (memora.text_stats, term_stats, posting) equal a count of
    the chunks."""
    stored = execute(
        url, "SELECT collection_id, chunks, total_length FROM memora.text_stats WHERE chunks <> 0 ORDER BY 1"
    )
    counted = execute(
        url, "SELECT collection_id, count(*), sum(length(tsv)) FROM memora.chunk GROUP BY collection_id ORDER BY 1"
    )
    assert stored == counted
    stored_terms = execute(url, "SELECT collection_id, lexeme, df FROM memora.term_stats ORDER BY 1, 2")
    counted_terms = execute(
        url,
        "SELECT c.collection_id, u.lexeme, count(*) FROM memora.chunk c, unnest(c.tsv) u "
        "GROUP BY c.collection_id, u.lexeme ORDER BY 1, 2",
    )
    assert stored_terms == counted_terms
    # The postings (migration 0008), kept by the same statements: one per lexeme and chunk, with tf and length.
    stored_postings = execute(
        url, "SELECT collection_id, chunk_id, lexeme, tf, len FROM memora.posting ORDER BY 1, 2, 3"
    )
    counted_postings = execute(
        url,
        "SELECT c.collection_id, c.id, u.lexeme, coalesce(cardinality(u.positions), 1), length(c.tsv) "
        "FROM memora.chunk c, unnest(c.tsv) u ORDER BY 1, 2, 3",
    )
    assert stored_postings == counted_postings
    assert counted  # something was counted
