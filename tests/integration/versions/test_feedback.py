"""POST /v1/collections/{name}/feedback: a search result judged relevant or not, kept as examples of the collection's
feedback dataset, where evaluation and exports read it as any other."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.models import Chunk, Collection
from tests.factories import make_chunk, make_document


@pytest.fixture
def chunk(api: TestClient, db: Session) -> Chunk:
    """Collection 'docs' with document 'manual' and one chunk; dataset 'docs-feedback' named as its feedback dataset."""
    assert api.post("/v1/datasets", json={"name": "docs-feedback", "task": "pairs"}).status_code == 201
    response = api.post(
        "/v1/collections",
        json={"name": "docs", "embedding_provider": "hashing", "dimensions": 8, "feedback_dataset": "docs-feedback"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["feedback_dataset"] == "docs-feedback"
    collection = db.query(Collection).filter_by(name="docs").one()
    made = make_chunk(db, make_document(db, collection, external_id="manual"), text="Reset the router by holding it.")
    db.commit()
    return made


def examples(api: TestClient) -> list[dict[str, Any]]:
    response = api.get("/v1/datasets/docs-feedback/examples")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_relevant_feedback_is_a_pair_and_not_relevant_a_labeled_negative(api: TestClient, chunk: Chunk) -> None:
    query = "how do I reset my router"
    relevant = api.post("/v1/collections/docs/feedback", json={"query": query, "chunk_id": chunk.id, "relevant": True,
                                                               "version": 1})  # fmt: skip
    again = api.post("/v1/collections/docs/feedback", json={"query": query, "chunk_id": chunk.id, "relevant": True,
                                                            "version": 1})  # fmt: skip
    not_relevant = api.post(
        "/v1/collections/docs/feedback", json={"query": "router colours", "external_id": "manual", "relevant": False}
    )

    assert relevant.status_code == 201, relevant.text
    assert relevant.json() == {"dataset": "docs-feedback", "stored": True}
    assert again.json() == {"dataset": "docs-feedback", "stored": False}
    assert not_relevant.status_code == 201, not_relevant.text
    pair, negative = examples(api)
    assert pair["format"] == "pairs"
    assert (pair["record"]["query"], pair["record"]["positive"]) == (query, "Reset the router by holding it.")
    assert pair["metadata"] == {"relevant": {"manual": 1}, "feedback": {"relevant": True, "version": 1}}
    assert pair["source"]["chunk_id"] == chunk.id
    assert negative["format"] == "custom"
    assert (negative["record"]["query"], negative["record"]["label"]) == ("router colours", "not_relevant")
    assert negative["metadata"]["relevant"] == {"manual": 0}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"query": "q", "relevant": True}, 422, "body"),
        ({"query": "q", "chunk_id": 10**9, "relevant": True}, 422, "chunk_id"),
        ({"query": "q", "external_id": "nowhere", "relevant": True}, 422, "external_id"),
        ({"query": "q", "external_id": "manual", "relevant": True, "version": 7}, 422, "version"),
        ({"query": " ", "external_id": "manual", "relevant": True}, 422, "body"),
    ],
)
def test_feedback_on_what_the_collection_lacks_is_a_422_naming_the_field(
    api: TestClient, chunk: Chunk, body: dict[str, Any], status: int, field: str
) -> None:
    response = api.post("/v1/collections/docs/feedback", json=body)

    assert response.status_code == status, response.text
    assert response.json()["error"]["details"][0]["field"] == field
    assert examples(api) == []


def test_a_collection_without_a_feedback_dataset_refuses_feedback(api: TestClient, chunk: Chunk) -> None:
    cleared = api.patch("/v1/collections/docs", json={"feedback_dataset": None})
    refused = api.post("/v1/collections/docs/feedback", json={"query": "q", "chunk_id": chunk.id, "relevant": True})
    unknown = api.patch("/v1/collections/docs", json={"feedback_dataset": "nowhere"})

    assert cleared.json()["feedback_dataset"] is None
    assert refused.status_code == 409
    assert "feedback_dataset" in refused.json()["error"]["message"]
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"][0]["field"] == "feedback_dataset"


def test_feedback_is_a_judged_query_for_evaluation_and_training(api: TestClient, db: Session, chunk: Chunk) -> None:
    from app.eval.datasets import dataset_queries

    make_document(db, db.query(Collection).filter_by(name="docs").one(), external_id="faq")
    db.commit()
    for external_id, relevant in (("manual", True), ("faq", False)):
        body = {"query": "reset router", "external_id": external_id, "relevant": relevant}
        response = api.post("/v1/collections/docs/feedback", json=body)
        assert response.status_code == 201, response.text

    (judged,) = dataset_queries(db, "docs-feedback")

    assert (judged.text, judged.judgments) == ("reset router", {"manual": 1, "faq": 0})
