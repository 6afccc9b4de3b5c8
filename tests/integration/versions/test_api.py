"""/v1/collections/{name}/embeddings over HTTP: list, add, activate and drop versions of a collection's vectors."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Chunk, Collection
from tests.conftest import app_on
from tests.factories import make_chunk, make_document, make_embedding
from tests.schema import q

VECTORS_8D = [[1.0, 0, 0, 0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0, 0, 0, 0]]


@pytest.fixture
def collection(api: TestClient, db: Session) -> Collection:
    """Collection 'docs' (hashing, 16 dimensions) with two chunks, each with its version 1 vector."""
    response = api.post("/v1/collections", json={"name": "docs", "embedding_provider": "hashing", "dimensions": 16})
    assert response.status_code == 201, response.text
    collection = db.query(Collection).filter_by(name="docs").one()
    document = make_document(db, collection)
    for ordinal in range(2):
        chunk = make_chunk(db, document, ordinal=ordinal, text=f"chunk {ordinal}")
        make_embedding(db, chunk, [float(ordinal == i) for i in range(16)], model="hashing")
    return collection


def versions(api: TestClient) -> list[dict[str, Any]]:
    response = api.get("/v1/collections/docs/embeddings")
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def fill_version_2(db: Session, collection: Collection) -> None:
    for chunk_id, vector in zip(_chunk_ids(db, collection), VECTORS_8D, strict=True):
        chunk = db.get_one(Chunk, (collection.id, chunk_id))
        make_embedding(db, chunk, vector, model="hashing", version=2)


def _chunk_ids(db: Session, collection: Collection) -> list[int]:
    rows = db.execute(text(q("SELECT id FROM memora.chunk WHERE collection_id = :c ORDER BY id")), {"c": collection.id})
    return [row[0] for row in rows]


def test_a_collection_lists_its_first_version_active_and_filled(api: TestClient, collection: Collection) -> None:
    (first,) = versions(api)

    assert (first["number"], first["active"], first["status"]) == (1, True, "ready")
    assert (first["embedding_provider"], first["embedding_model"], first["dimensions"]) == ("hashing", "hashing", 16)
    assert (first["vectors"], first["chunks"]) == (2, 2)
    assert first["bytes"] > 0


def test_a_new_version_is_building_until_filled_and_activation_waits_for_it(
    api: TestClient, db: Session, collection: Collection
) -> None:
    created = api.post("/v1/collections/docs/embeddings", json={"dimensions": 8, "metric": "l2"})
    early = api.post("/v1/collections/docs/embeddings/2/activate")
    fill_version_2(db, collection)
    activated = api.post("/v1/collections/docs/embeddings/2/activate")

    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in ("number", "active", "status", "dimensions", "metric", "vectors")} == {
        "number": 2, "active": False, "status": "building", "dimensions": 8, "metric": "l2", "vectors": 0,
    }  # fmt: skip
    assert early.status_code == 409
    assert "lacks the vectors of 2 chunk(s)" in early.json()["error"]["message"]
    assert activated.status_code == 200, activated.text
    assert activated.json()["active"] is True
    described = api.get("/v1/collections/docs").json()
    assert (described["dimensions"], described["metric"]) == (8, "l2")
    assert [v["active"] for v in versions(api)] == [False, True]


def test_force_activates_an_incomplete_version_and_rolling_back_is_activating_the_old_one(
    api: TestClient, collection: Collection
) -> None:
    api.post("/v1/collections/docs/embeddings", json={"metric": "inner_product"})

    forced = api.post("/v1/collections/docs/embeddings/2/activate", json={"force": True})
    back = api.post("/v1/collections/docs/embeddings/1/activate")

    assert forced.status_code == 200, forced.text
    assert back.status_code == 200, back.text
    assert [v["active"] for v in versions(api)] == [True, False]
    assert api.get("/v1/collections/docs").json()["metric"] == "cosine"


def test_dropping_a_version_frees_its_table_but_not_the_active_one(
    api: TestClient, connection: Connection, collection: Collection
) -> None:
    api.post("/v1/collections/docs/embeddings", json={"metric": "l2"})

    active = api.delete("/v1/collections/docs/embeddings/1")
    dropped = api.delete("/v1/collections/docs/embeddings/2")

    assert active.status_code == 409
    assert dropped.status_code == 204
    table = connection.execute(text("SELECT to_regclass(:t)"), {"t": q(f"memora.embedding_c{collection.id}_v2")})
    assert table.scalar() is None
    assert api.get("/v1/collections/docs/embeddings/2").status_code == 404
    assert [v["number"] for v in versions(api)] == [1]


def test_a_failed_version_is_set_building_again(api: TestClient, db: Session, collection: Collection) -> None:
    api.post("/v1/collections/docs/embeddings", json={"metric": "l2"})
    db.execute(text(q("UPDATE memora.embedding_version SET status = 'failed', error = 'no key' WHERE number = 2")))

    refused = api.post("/v1/collections/docs/embeddings/2/activate")
    wrong = api.patch("/v1/collections/docs/embeddings/2", json={"status": "ready"})
    again = api.patch("/v1/collections/docs/embeddings/2", json={"status": "building"})

    assert refused.status_code == 409
    assert "failed: no key" in refused.json()["error"]["message"]
    assert wrong.status_code == 422
    assert again.status_code == 200, again.text
    assert (again.json()["status"], again.json()["error"]) == ("building", None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"embedding_provider": "local", "dimensions": 100}, "dimensions"),
        ({"embedding_provider": "hashing", "embedding_model": "other", "dimensions": 8}, "embedding_model"),
        ({"dimensions": 3000}, "dimensions"),
        ({"hnsw": {"m": 32, "ef_construction": 40}}, "hnsw"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_version_that_cannot_work_is_refused_naming_the_field(
    api: TestClient, collection: Collection, body: dict[str, Any], field: str
) -> None:
    response = api.post("/v1/collections/docs/embeddings", json=body)

    assert response.status_code == 422, response.text
    assert any(field in str(problem.get("field", "")) for problem in response.json()["error"]["details"]), response.text
    assert [v["number"] for v in versions(api)] == [1]


def test_a_version_of_a_provider_without_a_key_is_refused(
    settings: Settings, engine: Engine, db: Session, collection: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    app = app_on(db, settings.model_copy(update={"openai_api_key": None}), engine)
    with TestClient(app) as client:
        response = client.post("/v1/collections/docs/embeddings", json={"embedding_provider": "openai"})

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "embedding_provider"
    assert "API key" in response.json()["error"]["details"][0]["reason"]


def test_unknown_versions_and_collections_are_404(api: TestClient, collection: Collection) -> None:
    assert api.get("/v1/collections/docs/embeddings/9").status_code == 404
    assert api.post("/v1/collections/docs/embeddings/9/activate").status_code == 404
    assert api.delete("/v1/collections/docs/embeddings/9").status_code == 404
    assert api.get("/v1/collections/nope/embeddings").status_code == 404
    assert api.get("/v1/collections/docs/embeddings/0").status_code == 422


def test_a_search_reads_the_version_it_asks_for_and_says_which(
    api: TestClient, db: Session, collection: Collection
) -> None:
    api.post("/v1/collections/docs/embeddings", json={"dimensions": 8, "metric": "l2"})
    fill_version_2(db, collection)
    search = "/v1/collections/docs/search"

    active = api.post(search, json={"query": "chunk", "mode": "vector", "k": 2})
    pinned = api.post(search, json={"query": "chunk", "mode": "vector", "k": 2, "version": 2})
    own_vector = api.post(search, json={"embedding": VECTORS_8D[1], "mode": "vector", "k": 2, "version": 2})
    hybrid = api.post(search, json={"query": "chunk", "embedding": VECTORS_8D[1], "k": 2, "version": 2})
    text_only = api.post(search, json={"query": "chunk", "mode": "text", "k": 2})

    assert active.status_code == pinned.status_code == own_vector.status_code == hybrid.status_code == 200
    assert (active.json()["embedding_version"], pinned.json()["embedding_version"]) == (1, 2)
    # Version 2 holds VECTORS_8D: the second chunk is the nearest to its own vector, at distance 0.
    ids = _chunk_ids(db, collection)
    assert [hit["chunk_id"] for hit in own_vector.json()["results"]] == [ids[1], ids[0]]
    assert hybrid.json()["embedding_version"] == 2
    assert text_only.json()["embedding_version"] is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"query": "chunk", "mode": "vector", "version": 9}, "has no embedding version 9"),
        ({"embedding": [1.0] * 8, "mode": "vector", "version": 9}, "has no embedding version 9"),
        ({"query": "chunk", "mode": "text", "version": 1}, "text search reads no vectors"),
    ],
)
def test_a_search_of_a_version_that_is_not_there_is_refused(
    api: TestClient, collection: Collection, body: dict[str, Any], reason: str
) -> None:
    response = api.post("/v1/collections/docs/search", json=body)

    assert response.status_code == 422, response.text
    (problem,) = response.json()["error"]["details"]
    assert problem["field"] == "body.version"
    assert reason in problem["reason"]


def test_patching_the_model_makes_a_version_that_takes_over_once_filled(
    api: TestClient, db: Session, collection: Collection
) -> None:
    patched = api.patch("/v1/collections/docs", json={"dimensions": 8, "description": "smaller vectors"})
    pending = versions(api)
    search_during = api.post("/v1/collections/docs/search", json={"query": "chunk", "mode": "vector", "k": 2})
    fill_version_2(db, collection)
    db.commit()
    worker_done = _finish_as_the_worker(db, collection)

    assert patched.status_code == 200, patched.text
    # Searches keep reading version 1 while version 2 fills: the collection's model is still its.
    assert (patched.json()["dimensions"], patched.json()["active_version"]) == (16, 1)
    assert patched.json()["description"] == "smaller vectors"
    assert [(v["number"], v["status"], v["activate_when_ready"]) for v in pending] == [
        (1, "ready", False), (2, "building", True)
    ]  # fmt: skip
    assert search_during.status_code == 200
    assert search_during.json()["embedding_version"] == 1
    assert worker_done
    after = api.get("/v1/collections/docs").json()
    assert (after["dimensions"], after["active_version"]) == (8, 2)


def test_activating_by_hand_cancels_a_pending_take_over(api: TestClient, db: Session, collection: Collection) -> None:
    api.patch("/v1/collections/docs", json={"dimensions": 8})
    rollback = api.post("/v1/collections/docs/embeddings/1/activate")
    fill_version_2(db, collection)
    db.commit()
    _finish_as_the_worker(db, collection)

    assert rollback.status_code == 200, rollback.text
    assert api.get("/v1/collections/docs").json()["active_version"] == 1
    assert [v["activate_when_ready"] for v in versions(api)] == [False, False]


def test_a_patch_that_changes_nothing_of_the_model_makes_no_version(api: TestClient, collection: Collection) -> None:
    same = api.patch("/v1/collections/docs", json={"embedding_provider": "hashing", "dimensions": 16})

    assert same.status_code == 200, same.text
    assert len(versions(api)) == 1


def _finish_as_the_worker(db: Session, collection: Collection) -> bool:
    """What the backfill does when it finds version 2 filled: mark it ready (and active, if it takes over)."""
    from datetime import timedelta

    from app.versions import repository

    conn = db.connection()
    claimed = repository.claim(conn, "test-worker", timedelta(seconds=30))
    assert claimed is not None
    assert claimed.number == 2
    done = repository.finish(conn, claimed, "test-worker")
    db.commit()
    return bool(done)
