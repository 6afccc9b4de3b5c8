"""/v1/collections over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from app.db.query import Query


def create(api: TestClient, **body: Any) -> Any:
    return api.post("/v1/collections", json={"name": "docs", **body})


def test_create_with_defaults_uses_the_local_model(api: TestClient, connection: Connection) -> None:
    response = create(api)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["embedding_provider"], body["embedding_model"], body["dimensions"]) == (
        "local",
        "all-MiniLM-L6-v2",
        384,
    )
    assert body["chunking"] == {"strategy": "recursive", "size": 200, "overlap": 32}
    assert body["hnsw"] == {"m": 16, "ef_construction": 64}
    index = connection.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'embedding_c%_hnsw'"))
    assert any("vector(384)) vector_cosine_ops" in row[0] for row in index)


def test_create_with_every_setting(api: TestClient) -> None:
    response = create(
        api,
        description="Medical abstracts",
        embedding_provider="hashing",
        dimensions=64,
        metric="inner_product",
        storage="halfvec",
        chunking={"strategy": "tokens", "size": 128, "overlap": 16},
        language="simple",
        hnsw={"m": 8, "ef_construction": 40},
        metadata={"owner": "ml"},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["embedding_model"] == "hashing"
    assert body["language"] == "simple"
    assert body["metadata"] == {"owner": "ml"}


def test_name_taken_is_409(api: TestClient) -> None:
    create(api, embedding_provider="hashing")

    response = create(api, embedding_provider="hashing")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "has space"}, "body.name"),
        ({"chunking": {"size": 64, "overlap": 64}}, "body.chunking"),
        ({"hnsw": {"m": 16, "ef_construction": 20}}, "body.hnsw"),
        ({"metric": "manhattan"}, "body.metric"),
        ({"embedding_provider": "nope"}, "body.embedding_provider"),
        ({"unknown": 1}, "body.unknown"),
    ],
)
def test_invalid_settings_are_422_naming_the_field(api: TestClient, body: dict[str, Any], field: str) -> None:
    response = api.post("/v1/collections", json={"name": "docs", "embedding_provider": "hashing"} | body)

    assert response.status_code == 422
    fields = [problem["field"] for problem in response.json()["error"]["details"]]
    assert any(f.startswith(field) for f in fields), fields


def test_unknown_language_is_422(api: TestClient) -> None:
    response = create(api, embedding_provider="hashing", language="klingon")

    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("language:")


def test_too_many_dimensions_for_vector_but_not_halfvec(api: TestClient) -> None:
    too_many = create(api, embedding_provider="hashing", dimensions=3072)
    halfvec = create(api, embedding_provider="hashing", dimensions=3072, storage="halfvec")

    assert too_many.status_code == 422
    assert "halfvec" in too_many.json()["error"]["message"]
    assert halfvec.status_code == 201


def test_local_model_with_wrong_dimensions_is_422(api: TestClient) -> None:
    response = create(api, embedding_provider="local", dimensions=512)

    assert response.status_code == 422
    assert "dimensions" in response.json()["error"]["message"]


def test_list_get_patch_delete(api: TestClient, connection: Connection) -> None:
    create(api, embedding_provider="hashing")
    api.post("/v1/collections", json={"name": "other", "embedding_provider": "hashing"})

    listed = api.get("/v1/collections").json()
    patched = api.patch("/v1/collections/docs", json={"description": "new", "hnsw": {"m": 24, "ef_construction": 96}})
    index = connection.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'embedding_c%_hnsw'"))
    rebuilt = any("m='24'" in row[0] for row in index)
    deleted = api.delete("/v1/collections/docs")

    assert [c["name"] for c in listed] == ["docs", "other"]
    assert patched.status_code == 200, patched.text
    assert patched.json()["description"] == "new"
    assert rebuilt
    assert deleted.status_code == 204
    assert api.get("/v1/collections/docs").status_code == 404


def test_changing_chunking_queues_documents_again_and_a_new_model_does_not(
    api: TestClient, connection: Connection
) -> None:
    create(api, embedding_provider="hashing")
    api.post("/v1/collections/docs/documents", json={"external_id": "a", "content": "Some text."})
    Query("UPDATE memora.document SET status = 'ready'").run(connection)

    api.patch("/v1/collections/docs", json={"chunking": {"strategy": "tokens", "size": 64, "overlap": 8}})
    after_chunking = Query("SELECT status FROM memora.document").run(connection).scalar()
    Query("UPDATE memora.document SET status = 'ready'").run(connection)
    patched = api.patch("/v1/collections/docs", json={"dimensions": 32})
    after_model = Query("SELECT status FROM memora.document").run(connection).scalar()

    assert after_chunking == "pending"
    # No chunk lacks a vector of the new size (there are none): its version is active at once, and nothing is redone.
    assert (patched.json()["dimensions"], patched.json()["active_version"]) == (32, 2)
    assert after_model == "ready"


def test_unknown_collection_is_404(api: TestClient) -> None:
    for response in (api.get("/v1/collections/nope"), api.patch("/v1/collections/nope", json={}),
                     api.delete("/v1/collections/nope")):  # fmt: skip
        assert response.status_code == 404
        assert "nope" in response.json()["error"]["message"]


def test_chunks_larger_than_the_model_reads_are_422(api: TestClient) -> None:
    local = create(api, chunking={"strategy": "recursive", "size": 512, "overlap": 32})
    hashing = create(api, embedding_provider="hashing", chunking={"strategy": "recursive", "size": 512, "overlap": 32})
    patched = api.patch("/v1/collections/docs", json={"embedding_provider": "local"})

    assert local.status_code == 422
    assert local.json()["error"]["message"].startswith("chunking.size: at most 208 tokens")
    assert hashing.status_code == 201
    assert patched.status_code == 422


def test_bm25_parameters_default_and_change(api: TestClient, connection: Connection) -> None:
    default = create(api, embedding_provider="hashing").json()
    tuned = api.post(
        "/v1/collections", json={"name": "tuned", "embedding_provider": "hashing", "bm25_k1": 1.2, "bm25_b": 0.75}
    ).json()
    patched = api.patch("/v1/collections/docs", json={"bm25_k1": 0, "bm25_b": 1}).json()
    kept = api.patch("/v1/collections/docs", json={"description": "other"}).json()
    stored = Query("SELECT name, bm25_k1, bm25_b FROM memora.collection ORDER BY name").run(connection).all()

    assert (default["bm25_k1"], default["bm25_b"]) == (0.9, 0.4)
    assert (tuned["bm25_k1"], tuned["bm25_b"]) == (1.2, 0.75)
    assert (patched["bm25_k1"], patched["bm25_b"]) == (0.0, 1.0)
    assert (kept["bm25_k1"], kept["bm25_b"]) == (0.0, 1.0)
    assert [tuple(row) for row in stored] == [("docs", 0.0, 1.0), ("tuned", 1.2, 0.75)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"bm25_k1": -0.1}, "body.bm25_k1"),
        ({"bm25_k1": 10.5}, "body.bm25_k1"),
        ({"bm25_k1": "high"}, "body.bm25_k1"),
        ({"bm25_b": 1.01}, "body.bm25_b"),
        ({"bm25_b": -1}, "body.bm25_b"),
    ],
)
def test_bm25_parameters_out_of_range_are_422(api: TestClient, body: dict[str, Any], field: str) -> None:
    created = api.post("/v1/collections", json={"name": "docs", "embedding_provider": "hashing"} | body)
    create(api, embedding_provider="hashing")
    patched = api.patch("/v1/collections/docs", json=body)

    for response in (created, patched):
        assert response.status_code == 422
        assert field in [problem["field"] for problem in response.json()["error"]["details"]]
    assert api.get("/v1/collections/docs").json()["bm25_k1"] == 0.9
