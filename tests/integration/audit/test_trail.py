"""The audit trail through the API: what is recorded (writes and deletes, refused ones too), what is not (reads),
GET /v1/audit's filters and pages, and retention. These requests share the test's rolled-back transaction (the
`api` fixture records the trail in it too); test_committed.py has the trail on the real request session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.db.models import AuditEvent

DOCS = "/v1/collections/kb/documents"


@pytest.fixture(autouse=True)
def no_earlier_events(db: Session) -> None:
    """Events that other tests' apps committed to the shared database are not this test's: deleted inside its
    rolled-back transaction, so the trail each test reads holds its own requests only, whatever ran before."""
    db.execute(delete(AuditEvent))


def events(api: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/v1/audit", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_writes_and_deletes_are_recorded_reads_are_not(api: TestClient) -> None:
    created = api.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing"})
    uploaded = api.post(DOCS, json={"external_id": "a", "content": "Alpha."})
    assert (created.status_code, uploaded.status_code) == (201, 202)
    assert api.get(DOCS).status_code == 200
    assert api.post("/v1/collections/kb/search", json={"query": "alpha", "mode": "text"}).status_code == 200
    assert api.get("/v1/collections/kb").status_code == 200
    deleted = api.delete(f"{DOCS}/a")
    assert deleted.status_code == 204

    found = events(api)
    assert [(e["method"], e["route"], e["path"], e["collection"], e["status"]) for e in found] == [
        ("DELETE", "/v1/collections/{name}/documents/{external_id}", f"{DOCS}/a", "kb", 204),
        ("POST", "/v1/collections/{name}/documents", DOCS, "kb", 202),
        ("POST", "/v1/collections", "/v1/collections", "kb", 201),
    ]
    assert [e["request_id"] for e in found] == [r.headers["X-Request-ID"] for r in (deleted, uploaded, created)]
    assert all(e["key_name"] is None and e["key_id"] is None and e["dataset"] is None for e in found)
    assert events(api) == found  # reading the trail is not a write


def test_a_dataset_write_names_the_dataset(api: TestClient) -> None:
    assert api.post("/v1/datasets", json={"name": "qa", "task": "classification"}).status_code == 201
    assert api.delete("/v1/datasets/qa").status_code == 204
    assert [(e["method"], e["dataset"], e["collection"]) for e in events(api)] == [
        ("DELETE", "qa", None),
        ("POST", "qa", None),
    ]


def test_failed_writes_are_recorded_with_their_status(api: TestClient) -> None:
    assert api.post("/v1/collections/nowhere/documents", json={"content": "x"}).status_code == 404
    assert api.post("/v1/collections", json={"name": "bad name!"}).status_code == 422
    assert api.delete("/v1/collections/nowhere").status_code == 404
    assert [(e["method"], e["path"], e["collection"], e["status"]) for e in events(api)] == [
        ("DELETE", "/v1/collections/nowhere", "nowhere", 404),
        ("POST", "/v1/collections", None, 422),
        ("POST", "/v1/collections/nowhere/documents", "nowhere", 404),
    ]


def test_filters_and_pages(api: TestClient, db: Session) -> None:
    for name in ("kb", "other"):
        api.post("/v1/collections", json={"name": name, "embedding_provider": "hashing"})
    for i in range(3):
        api.post(DOCS, json={"external_id": f"d{i}", "content": "text"})
    api.post("/v1/datasets", json={"name": "qa", "task": "classification"})
    db.add(
        AuditEvent(
            key_name="ci", method="POST", route="/r", path="/p", status=201, at=datetime.now(UTC) - timedelta(days=3)
        )
    )
    db.flush()

    assert len(events(api)) == 7
    assert len(events(api, collection="kb")) == 4
    assert [e["collection"] for e in events(api, collection="other")] == ["other"]
    assert [e["dataset"] for e in events(api, dataset="qa")] == ["qa"]
    assert [e["key_name"] for e in events(api, key="ci")] == ["ci"]
    assert len(events(api, since="1d")) == 6
    assert len(events(api, since=(datetime.now(UTC) - timedelta(days=4)).isoformat())) == 7

    first = api.get("/v1/audit", params={"collection": "kb", "limit": 3}).json()
    second = api.get("/v1/audit", params={"collection": "kb", "limit": 3, "cursor": first["next_cursor"]}).json()
    assert (len(first["items"]), len(second["items"]), second["next_cursor"]) == (3, 1, None)
    ids = [e["id"] for e in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)
    assert [e["id"] for e in events(api, collection="kb")] == ids


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "0d"}, "since"),
        ({"cursor": "bm90IGEgbnVtYmVy"}, "cursor"),
        ({"limit": "0"}, "query.limit"),
    ],
)
def test_bad_filters_are_422_naming_the_field(api: TestClient, params: dict[str, str], field: str) -> None:
    response = api.get("/v1/audit", params=params)
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["error"]["details"]] == [field]


def _old_event(db: Session, days: int) -> None:
    at = datetime.now(UTC) - timedelta(days=days)
    db.add(AuditEvent(method="POST", route="/old", path="/old", status=201, at=at))
    db.flush()


def _old_events(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.route == "/old")) or 0


def test_events_past_retention_are_deleted_at_most_once_an_hour(api: TestClient, db: Session) -> None:
    trail = api.app.state.audit  # type: ignore[attr-defined]
    clock = [1000.0]
    trail.clock = lambda: clock[0]
    _old_event(db, days=91)
    _old_event(db, days=89)
    api.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing"})
    assert _old_events(db) == 1  # the first write of the process purged; 89 days is within the 90 kept

    _old_event(db, days=100)
    clock[0] += 3599
    api.post(DOCS, json={"content": "one"})
    assert _old_events(db) == 2  # not an hour yet
    clock[0] += 1
    api.post(DOCS, json={"content": "two"})
    assert _old_events(db) == 1
    assert len(events(api)) == 4  # three writes and the event of 89 days
