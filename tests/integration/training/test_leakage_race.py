"""Issue 13 case 7: GET .../leakage while the dataset is being deleted is a 404 or a whole report, never a 500.

The report reads the dataset's row at several steps; a delete committed between two of them made the later read find
nothing (NoResultFound, a 500). These tests run through the API's real sessions against committed rows, and do the
delete on a second connection at the moment that used to break: no sleeps, the blocking is seen in pg_stat_activity.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.config import Settings
from app.db.engine import make_engine
from app.training.datasets import service as datasets
from app.training.quality import leakage
from tests.schema import q

HASHING = {"provider": "hashing", "dimensions": 64}
WAIT = 60  # seconds: a safety net for a loaded machine, not a measure


@pytest.fixture
def client(fresh_db_url: str) -> Iterator[TestClient]:
    """The API on its own engine (sessions commit), with a dataset "d" of train and test examples."""
    with TestClient(create_app(Settings(database_url=fresh_db_url))) as api:
        assert api.post("/v1/datasets", json={"name": "d", "task": "classification"}).status_code == 201
        examples = [{"text": f"example number {i}", "label": "x"} for i in range(20)]
        assert api.post("/v1/datasets/d/examples", json=examples).status_code == 201
        yield api


def delete_on_a_second_connection(url: str, *, lock_timeout_ms: int | None = None) -> psycopg.Connection[Any]:
    """Delete dataset "d" as the API does, in a transaction left open; the caller commits or rolls back."""
    conn = psycopg.connect(url)
    try:
        if lock_timeout_ms is not None:
            conn.execute(f"SET lock_timeout = {int(lock_timeout_ms)}")
        conn.execute(
            q("DELETE FROM memora.snapshot WHERE dataset_id = (SELECT id FROM memora.dataset WHERE name = 'd')")
        )
        conn.execute(q("DELETE FROM memora.dataset WHERE name = 'd'"))
    except BaseException:
        conn.close()
        raise
    return conn


def test_issue_13_case_7_a_delete_during_the_report_waits_for_it(
    client: TestClient, fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete comes between the report's first read of the dataset and its later ones: it must wait (here it
    gives up after its lock_timeout), and the report answers whole."""
    outcome: dict[str, str] = {}
    embed = leakage.ensure_embeddings

    def delete_then_embed(db: Session, *args: Any, **kwargs: Any) -> int:
        try:
            conn = delete_on_a_second_connection(fresh_db_url, lock_timeout_ms=500)
        except psycopg.errors.LockNotAvailable:
            outcome["delete"] = "waited for the report"
        else:
            conn.commit()
            conn.close()
            outcome["delete"] = "committed mid-report"
        return embed(db, *args, **kwargs)

    monkeypatch.setattr(leakage, "ensure_embeddings", delete_then_embed)
    response = client.get("/v1/datasets/d/leakage", params=HASHING)

    assert outcome == {"delete": "waited for the report"}
    assert response.status_code == 200, response.text
    assert response.json()["checked"] == sum(s != "train" for s in splits(client))
    assert client.get("/v1/datasets/d").status_code == 200


def test_issue_13_case_7_a_report_during_a_delete_waits_and_is_a_404(client: TestClient, fresh_db_url: str) -> None:
    deleting = delete_on_a_second_connection(fresh_db_url)
    answer: dict[str, Any] = {}

    def report() -> None:
        try:
            answer["r"] = client.get("/v1/datasets/d/leakage", params=HASHING)
        except Exception as exc:  # a 500 raises in the test client: the assertion below shows it
            answer["error"] = repr(exc)

    request = threading.Thread(target=report)
    request.start()
    try:
        blocked = wait_for_a_blocked_api_backend(fresh_db_url, request)
    finally:
        deleting.commit()
        deleting.close()
        request.join(WAIT)

    assert blocked, f"the report did not wait for the delete: {answer}"
    assert "r" in answer, answer
    assert answer["r"].status_code == 404, answer["r"].text
    assert answer["r"].json()["error"]["message"] == "no dataset named 'd'"


def wait_for_a_blocked_api_backend(url: str, request: threading.Thread) -> bool:
    """True once a backend of the API waits for a lock; False if the request ends first (or WAIT passes)."""
    deadline = time.monotonic() + WAIT
    with psycopg.connect(url, autocommit=True) as conn:
        while request.is_alive() and time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'memora-api' AND wait_event_type = 'Lock'"
            ).fetchone()
            if row and row[0]:
                return True
            request.join(0.05)  # poll interval while the request runs
    return False


def splits(client: TestClient) -> list[str]:
    return [e["split"] for e in client.get("/v1/datasets/d/examples").json()["items"]]


def test_the_report_of_a_deleted_dataset_is_a_404(client: TestClient, fresh_db_url: str) -> None:
    engine = make_engine(Settings(database_url=fresh_db_url), "test")
    with Session(engine) as db:
        datasets.delete_dataset(db, "d")
        db.commit()
    engine.dispose()

    assert client.get("/v1/datasets/d/leakage", params=HASHING).status_code == 404
