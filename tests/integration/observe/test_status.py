"""GET /v1/status: the queue per collection and overall, failures with the last errors, leases and workers, each
number equal to a count of the database's rows."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.api.main import create_app
from app.config import Settings
from app.db.query import Query
from tests.integration.api.test_docs_samples import json_block_after
from tests.integration.observe.helpers import seed

BY_COLLECTION = Query(
    "SELECT c.name, d.status, count(*) FROM memora.document d JOIN memora.collection c ON c.id = d.collection_id "
    "GROUP BY c.name, d.status"
)
LEASES = Query(
    "SELECT count(*) FILTER (WHERE available_at > now()), count(*) FILTER (WHERE available_at <= now()) "
    "FROM memora.document WHERE status = 'processing'"
)
ERRORS = Query(
    "SELECT id, external_id, status, error, request_id FROM memora.document "
    "WHERE error IS NOT NULL AND status IN ('pending', 'failed') ORDER BY updated_at DESC, id DESC"
)


def test_status_numbers_equal_counts_in_the_database(client: TestClient, committed: Engine) -> None:
    totals = seed(committed)
    with committed.connect() as conn:
        per_collection: dict[str, dict[str, int]] = {}
        for name, status, count in BY_COLLECTION.run(conn):
            per_collection.setdefault(name, {})[status] = count
        held, expired = LEASES.run(conn).one()
        errors = [tuple(row) for row in ERRORS.run(conn)]

    response = client.get("/v1/status")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {"reachable": True, "error": None}
    statuses = ("pending", "processing", "ready", "failed")
    assert {s: body["queue"][s] for s in statuses} == {s: totals.get(s, 0) for s in statuses}
    assert {c["collection"]: {s: c[s] for s in statuses if c[s]} for c in body["collections"]} == per_collection
    assert body["queue"]["oldest_pending_seconds"] >= 0
    assert body["leases"] == {"held": held, "expired": expired} == {"held": 1, "expired": 1}
    assert body["failures"]["failed"] == totals["failed"]
    assert body["failures"]["retrying"] == 1
    last = body["failures"]["last"]
    assert [(e["document_id"], e["external_id"], e["status"], e["error"], e["request_id"]) for e in last] == errors
    assert {e["collection"] for e in last} == {"secret-alpha"}
    assert [(w["name"], w["documents"], w["expired"]) for w in body["workers"]["holding"]] == [
        ("host:1:aaaaaa", 1, 0),
        ("host:2:bbbbbb", 1, 1),
    ]
    assert body["workers"]["connected"] == 0


def test_status_lists_as_many_errors_as_asked(client: TestClient, committed: Engine) -> None:
    seed(committed)

    assert len(client.get("/v1/status", params={"errors": 1}).json()["failures"]["last"]) == 1
    assert client.get("/v1/status", params={"errors": 0}).json()["failures"]["last"] == []
    too_many = client.get("/v1/status", params={"errors": 101})
    assert too_many.status_code == 422
    assert too_many.json()["error"]["details"][0]["field"] == "query.errors"


def test_status_of_an_empty_database(client: TestClient) -> None:
    body = client.get("/v1/status").json()

    assert body["queue"] == {"pending": 0, "processing": 0, "ready": 0, "failed": 0, "oldest_pending_seconds": None}
    assert body["collections"] == []
    assert body["failures"] == {"failed": 0, "retrying": 0, "last": []}


def test_status_when_the_database_does_not_answer_is_503() -> None:
    with TestClient(create_app(Settings(database_url="postgresql://nobody@127.0.0.1:9/nothing"))) as client:
        response = client.get("/v1/status")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"]["reachable"] is False
    assert "127.0.0.1" in body["database"]["error"]
    assert body["queue"] is None


def test_the_status_sample_in_the_docs_has_the_answers_shape(client: TestClient, committed: Engine) -> None:
    seed(committed)
    sample = json_block_after("rest.md", "## `GET /v1/status`")
    answer = client.get("/v1/status").json()

    def shape(value: object) -> object:
        """Keys all the way down (a list by its first item), without the values."""
        if isinstance(value, dict):
            return {key: shape(item) for key, item in value.items()}
        if isinstance(value, list):
            return [shape(value[0])] if value else []
        return None

    assert isinstance(sample, dict)
    assert shape(sample) == shape(answer)
