"""Hard negatives mined from a collection by hybrid search: never the positive or a near-copy of it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Collection
from app.embeddings.hashing import HashingEmbedder
from app.training.exports import negatives

DIMENSIONS = 64
POSITIVE = "The Eiffel Tower is in Paris."
# Near-copies of the positive, each caught by another rule.
COPIES = {
    "same": "The Eiffel Tower is in Paris.",
    "spelling": "THE EIFFEL   TOWER is in\nparis.",  # the same normalised text
    "inside": "Built in 1889, the Eiffel Tower is in Paris. It is 330 metres tall.",  # contains the positive
    "part": "Eiffel Tower is in Paris",  # inside the positive
    "punctuation": "The Eiffel Tower is in Paris!",  # the same words: cosine 1 under the hashing model
}
# Towers that are not the Eiffel Tower: what a mined negative should be.
HARD = {
    "pisa": "The Tower of Pisa is in Italy, not in Paris.",
    "tokyo": "Tokyo Tower is in Tokyo and looks like the Eiffel Tower.",
    "london": "Big Ben is a clock tower in London.",
    "berlin": "The TV tower is in Berlin.",
}
OTHER = {"banana": "Bananas are yellow fruit."}
ANCHOR = "Where is the Eiffel Tower?"


def vector(text: str) -> list[float]:
    return [float(x) for x in HashingEmbedder(DIMENSIONS).embed([text])[0]]


@pytest.fixture
def collection(api: TestClient) -> str:
    body = {"name": "towers", "embedding_provider": "hashing", "dimensions": DIMENSIONS}
    assert api.post("/v1/collections", json=body).status_code == 201
    documents = [
        {"external_id": key, "content": content, "chunks": [{"text": content, "embedding": vector(content)}]}
        for key, content in (COPIES | HARD | OTHER).items()
    ]
    stored = api.post("/v1/collections/towers/documents", json=documents)
    assert [d["status"] for d in stored.json()["documents"]] == ["ready"] * len(documents), stored.text
    return "towers"


def make(api: TestClient, name: str, records: list[dict[str, Any]]) -> None:
    assert api.post("/v1/datasets", json={"name": name, "task": "pairs"}).status_code == 201
    added = api.post(f"/v1/datasets/{name}/examples", json=records)
    assert added.status_code == 201, added.text


def triplets(api: TestClient, name: str, **params: Any) -> list[dict[str, str]]:
    response = api.get(f"/v1/datasets/{name}/export", params={"format": "triplets", **params})
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def test_mined_negatives_skip_the_positive_and_its_near_copies(api: TestClient, collection: str) -> None:
    make(api, "eiffel", [{"query": ANCHOR, "positive": POSITIVE}])

    lines = triplets(api, "eiffel", negatives=10, collection=collection)

    mined = [line["negative"] for line in lines]
    assert {(line["anchor"], line["positive"]) for line in lines} == {(ANCHOR, POSITIVE)}
    assert not set(mined) & set(COPIES.values())
    assert set(HARD.values()) <= set(mined)  # every other tower is found (and at most the banana besides)
    assert set(mined) <= set(HARD.values()) | set(OTHER.values())
    assert len(mined) == len(set(mined))


def test_the_number_per_example_and_the_order(
    api: TestClient, db: Session, settings: Settings, collection: str
) -> None:
    make(api, "two", [{"query": ANCHOR, "positive": POSITIVE}, {"query": "Which tower is in London?", "positive": "x"}])

    lines = triplets(api, "two", negatives=2, collection=collection)

    assert [line["anchor"] for line in lines] == [
        ANCHOR,
        ANCHOR,
        "Which tower is in London?",
        "Which tower is in London?",
    ]
    london = [line["negative"] for line in lines[2:]]
    assert london[0] == HARD["london"]  # the best hybrid result comes first
    found = db.query(Collection).filter_by(name=collection).one()
    miner = negatives.Miner(db, settings, found, 2)
    assert miner.mine([negatives.Pair(ANCHOR, POSITIVE, ())]) == [[line["negative"] for line in lines[:2]]]


def test_an_examples_own_negatives_come_first_and_are_not_mined_again(api: TestClient, collection: str) -> None:
    given = HARD["pisa"]
    make(api, "given", [{"anchor": ANCHOR, "positive": POSITIVE, "negative": given}])

    lines = triplets(api, "given", negatives=10, collection=collection)

    negatives_ = [line["negative"] for line in lines]
    assert negatives_[0] == given
    assert negatives_.count(given) == 1
    assert set(HARD.values()) <= set(negatives_)


def test_qa_questions_mine_against_their_context(api: TestClient, collection: str) -> None:
    context = "The Eiffel Tower is in Paris, on the Champ de Mars."
    answer = {"text": ["Paris"], "answer_start": [context.index("Paris")]}
    make(api, "questions", [{"question": ANCHOR, "context": context, "answers": answer}])

    lines = triplets(api, "questions", negatives=3, collection=collection)

    assert len(lines) == 3
    assert {line["positive"] for line in lines} == {context}
    # Once normalised, these are all inside the context ("inside" only overlaps it: no rule catches that).
    copies = {COPIES[key] for key in ("same", "spelling", "part", "punctuation")}
    assert not {line["negative"] for line in lines} & copies


def test_an_edited_copy_is_caught_by_its_cosine(
    api: TestClient, collection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    positive = (
        "The Eiffel Tower is a wrought iron lattice tower on the Champ de Mars in Paris France named after the "
        "engineer Gustave Eiffel"
    )
    edited = positive.replace("named after", "named for")  # other words: cosine 0.97 under the hashing model
    document = {"external_id": "edited", "content": edited, "chunks": [{"text": edited, "embedding": vector(edited)}]}
    assert api.post(f"/v1/collections/{collection}/documents", json=[document]).status_code == 202
    make(api, "long", [{"query": "Who is the Eiffel Tower named after?", "positive": positive}])

    mined = [line["negative"] for line in triplets(api, "long", negatives=10, collection=collection)]
    monkeypatch.setattr(negatives, "NEAR_COPY_COSINE", 1.01)
    unchecked = [line["negative"] for line in triplets(api, "long", negatives=10, collection=collection)]

    assert edited not in mined
    assert edited in unchecked


def test_near_copy_rules() -> None:
    assert negatives.normalise("  A,\tb!\n\nC.  ") == "a b c"
    assert negatives.near_copy("a b", "a b")
    assert negatives.near_copy("x a b y", "a b")
    assert negatives.near_copy("a b", "x a b y")
    assert not negatives.near_copy("a c", "a b")
    assert not negatives.near_copy("paris", "parisian cafes")  # whole words only
    assert not negatives.near_copy("", "a b")


def test_an_unknown_collection_is_404(api: TestClient) -> None:
    make(api, "lonely", [{"query": ANCHOR, "positive": POSITIVE}])

    response = api.get("/v1/datasets/lonely/export", params={"format": "triplets", "negatives": 1, "collection": "x"})

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no collection named 'x'"
