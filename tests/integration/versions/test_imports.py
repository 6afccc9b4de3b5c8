"""POST /v1/collections/{name}/embeddings/{number}/vectors: a client's own vectors into a version, all or nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db.models import Collection
from tests.factories import make_chunk, make_document, make_embedding
from tests.schema import q

STORED = "SELECT chunk_id, embedding::text FROM memora.embedding WHERE version = 2 ORDER BY chunk_id"


@pytest.fixture
def chunk_ids(api: TestClient, db: Session) -> list[int]:
    """Collection 'docs' (hashing, 16 dimensions): document 'manual' with three chunks, each with a version 1 vector;
    version 2 (4 dimensions) made for an import."""
    response = api.post("/v1/collections", json={"name": "docs", "embedding_provider": "hashing", "dimensions": 16})
    assert response.status_code == 201, response.text
    collection = db.query(Collection).filter_by(name="docs").one()
    document = make_document(db, collection, external_id="manual")
    ids = []
    for ordinal in range(3):
        chunk = make_chunk(db, document, ordinal=ordinal, text=f"chunk {ordinal}")
        make_embedding(db, chunk, [float(ordinal == i) for i in range(16)], model="hashing")
        ids.append(chunk.id)
    db.commit()
    created = api.post("/v1/collections/docs/embeddings", json={"dimensions": 4, "source": "import"})
    assert created.status_code == 201, created.text
    assert (created.json()["status"], created.json()["source"]) == ("building", "import")
    return ids


def send(api: TestClient, lines: list[Any], number: int = 2) -> Any:
    body = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    return api.post(
        f"/v1/collections/docs/embeddings/{number}/vectors",
        content=body.encode(),
        headers={"content-type": "application/x-ndjson"},
    )


def stored(db: Session) -> list[tuple[int, str]]:
    db.rollback()
    return [(row[0], row[1]) for row in db.execute(text(q(STORED)))]


def test_vectors_named_by_chunk_or_by_document_and_ordinal_fill_the_version(
    api: TestClient, db: Session, chunk_ids: list[int]
) -> None:
    response = send(api, [
        {"chunk_id": chunk_ids[0], "embedding": [1, 0, 0, 0]},
        "",
        {"external_id": "manual", "ordinal": 1, "embedding": [0, 1, 0, 0]},
        {"external_id": "manual", "ordinal": 2, "embedding": [0, 0, 0.5, 0.25]},
    ])  # fmt: skip

    assert response.status_code == 200, response.text
    assert response.json() == {"lines": 3, "vectors": 3, "status": "ready"}
    assert stored(db) == [(chunk_ids[0], "[1,0,0,0]"), (chunk_ids[1], "[0,1,0,0]"), (chunk_ids[2], "[0,0,0.5,0.25]")]
    assert api.post("/v1/collections/docs/embeddings/2/activate").status_code == 200
    hits = api.post("/v1/collections/docs/search", json={"mode": "vector", "embedding": [0, 1, 0, 0], "k": 1})
    assert hits.status_code == 200, hits.text
    assert (hits.json()["results"][0]["chunk_id"], hits.json()["embedding_version"]) == (chunk_ids[1], 2)


def test_a_partial_import_leaves_the_version_building_and_a_second_one_replaces_vectors(
    api: TestClient, db: Session, chunk_ids: list[int]
) -> None:
    first = send(api, [{"chunk_id": chunk_ids[0], "embedding": [1, 0, 0, 0]}])
    second = send(api, [{"chunk_id": c, "embedding": [0, 0, 0, 1]} for c in chunk_ids])

    assert first.json() == {"lines": 1, "vectors": 1, "status": "building"}
    assert second.json() == {"lines": 3, "vectors": 3, "status": "ready"}
    assert [vector for _, vector in stored(db)] == ["[0,0,0,1]"] * 3


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "a line must be a JSON object"),
        ({"embedding": [1, 0, 0, 0]}, "name the chunk: chunk_id, or external_id and ordinal"),
        ({"chunk_id": 1, "ordinal": 0, "embedding": [1, 0, 0, 0]}, "not both"),
        ({"chunk_id": "7", "embedding": [1, 0, 0, 0]}, "chunk_id: must be a positive integer"),
        ({"external_id": "manual", "ordinal": -1, "embedding": [1, 0, 0, 0]}, "ordinal: must be an integer from 0"),
        ({"chunk_id": 1, "embedding": [1, 0, 0]}, "embedding: has 3 dimensions; the version has 4"),
        ({"chunk_id": 1, "embedding": [1, "0", 0, 0]}, "embedding: must be an array of numbers"),
        ({"chunk_id": 1, "embedding": [1e39, 0, 0, 0]}, "finite in 32-bit floats"),
        ({"chunk_id": 1, "embedding": [1, 0, 0, 0], "vector": []}, "unknown field(s): vector"),
    ],
)
def test_a_bad_line_refuses_the_file_by_line_and_writes_nothing(
    api: TestClient, db: Session, chunk_ids: list[int], line: Any, reason: str
) -> None:
    response = send(api, [{"chunk_id": chunk_ids[0], "embedding": [1, 0, 0, 0]}, line])

    assert response.status_code == 422, response.text
    (problem,) = response.json()["error"]["details"]
    assert problem["field"] == "line 2"
    assert reason in problem["reason"]
    assert stored(db) == []


def test_unknown_chunks_and_a_chunk_named_twice_are_refused(api: TestClient, db: Session, chunk_ids: list[int]) -> None:
    unknown = send(api, [
        {"chunk_id": chunk_ids[0], "embedding": [1, 0, 0, 0]},
        {"chunk_id": chunk_ids[-1] + 1000, "embedding": [1, 0, 0, 0]},
        {"external_id": "nowhere", "ordinal": 0, "embedding": [1, 0, 0, 0]},
        {"external_id": "manual", "ordinal": 9, "embedding": [1, 0, 0, 0]},
    ])  # fmt: skip
    twice = send(api, [
        {"chunk_id": chunk_ids[0], "embedding": [1, 0, 0, 0]},
        {"external_id": "manual", "ordinal": 0, "embedding": [0, 1, 0, 0]},
    ])  # fmt: skip

    assert unknown.status_code == 422
    assert [p["field"] for p in unknown.json()["error"]["details"]] == ["line 2", "line 3", "line 4"]
    assert twice.status_code == 422
    assert twice.json()["error"]["details"] == [
        {"field": "line 1", "reason": f"chunk {chunk_ids[0]} is named again on line(s) 2"}
    ]
    assert stored(db) == []


def test_an_unknown_version_is_404_and_the_worker_leaves_an_import_version_alone(
    api: TestClient, chunk_ids: list[int]
) -> None:
    missing = send(api, [{"chunk_id": chunk_ids[0], "embedding": [1, 0, 0, 0]}], number=9)

    assert missing.status_code == 404
    version = api.get("/v1/collections/docs/embeddings/2").json()
    assert (version["status"], version["vectors"]) == ("building", 0)


def test_an_import_version_handed_to_the_worker_is_the_backfill_s(
    api: TestClient, db: Session, chunk_ids: list[int]
) -> None:
    from datetime import timedelta

    from app.versions import repository

    send(api, [{"chunk_id": chunk_ids[0], "embedding": [1, 0, 0, 0]}])
    left_alone = repository.claim(db.connection(), "test-worker", timedelta(seconds=30))
    handed = api.patch("/v1/collections/docs/embeddings/2", json={"source": "worker"})
    claimed = repository.claim(db.connection(), "test-worker", timedelta(seconds=30))
    empty = api.patch("/v1/collections/docs/embeddings/2", json={})

    assert left_alone is None
    assert handed.status_code == 200, handed.text
    assert (handed.json()["source"], handed.json()["status"]) == ("worker", "building")
    assert claimed is not None
    assert (claimed.number, claimed.after) == (2, 0)
    assert empty.status_code == 422
