"""POST /v1/collections/{name}/documents/retry: failed documents back to the queue, the rest left alone."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Connection

from app.db.query import Query

FAIL = Query("UPDATE memora.document SET status = 'failed', error = 'parser broke', attempts = 3 "
             "WHERE external_id = %(id)s")  # fmt: skip
STATE = Query("SELECT status, error, attempts FROM memora.document WHERE external_id = %(id)s")


def documents(api: TestClient) -> None:
    created = api.post("/v1/collections", json={"name": "docs", "embedding_provider": "hashing", "dimensions": 8})
    assert created.status_code == 201, created.text
    for external_id in ("broken", "fine", "also-broken"):
        response = api.post("/v1/collections/docs/documents", json={"external_id": external_id, "content": "Text."})
        assert response.status_code == 202, response.text


def test_retrying_named_documents_queues_the_failed_ones_and_leaves_the_others(
    api: TestClient, connection: Connection
) -> None:
    documents(api)
    for external_id in ("broken", "also-broken"):
        FAIL.run(connection, {"id": external_id})

    response = api.post("/v1/collections/docs/documents/retry", json={"external_ids": ["broken", "fine"]})

    assert response.status_code == 200, response.text
    assert response.json() == {"retried": ["broken"], "not_failed": ["fine"]}
    assert tuple(STATE.run(connection, {"id": "broken"}).one()) == ("pending", None, 0)
    assert STATE.run(connection, {"id": "also-broken"}).one()[0] == "failed"


def test_retrying_without_names_queues_every_failed_document(api: TestClient, connection: Connection) -> None:
    documents(api)
    for external_id in ("broken", "also-broken"):
        FAIL.run(connection, {"id": external_id})

    everything = api.post("/v1/collections/docs/documents/retry")
    again = api.post("/v1/collections/docs/documents/retry", json={})

    assert everything.json() == {"retried": ["also-broken", "broken"], "not_failed": []}
    assert again.json() == {"retried": [], "not_failed": []}


def test_a_document_the_collection_lacks_is_404_and_nothing_changes(api: TestClient, connection: Connection) -> None:
    documents(api)
    FAIL.run(connection, {"id": "broken"})

    missing = api.post("/v1/collections/docs/documents/retry", json={"external_ids": ["broken", "nowhere"]})
    empty = api.post("/v1/collections/docs/documents/retry", json={"external_ids": [""]})

    assert missing.status_code == 404
    assert "nowhere" in missing.json()["error"]["message"]
    assert STATE.run(connection, {"id": "broken"}).one()[0] == "failed"
    assert empty.status_code == 422


def test_a_name_postgresql_cannot_store_is_a_422_naming_it(api: TestClient) -> None:
    """Found by fuzzing (a 500): a NUL in a name to retry reached the database."""
    documents(api)

    response = api.post("/v1/collections/docs/documents/retry", json={"external_ids": ["fine", "bro\u0000ken"]})

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "body.external_ids.1"
