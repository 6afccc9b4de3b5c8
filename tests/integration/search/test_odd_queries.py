"""Queries people send that search was not shaped around (issue 15, "Bad input"): a question of 1,000 distinct
words, a query of stop words only, a query in another script, an empty query with an embedding. Each is answered
with results or a 422 naming the field, never a 500, in every mode that can take it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from tests.conftest import app_on
from tests.integration.search.corpus import QUERY, URL, store_corpus


@pytest.fixture(autouse=True)
def corpus(api: TestClient) -> None:
    store_corpus(api)


def thousand_words() -> str:
    """1,000 distinct words (a pasted page), the corpus's own word among them."""
    return " ".join(["aardvark"] + [f"word{i}x" for i in range(999)])


@pytest.fixture
def roomy(settings: Settings, engine: Engine, db: Session) -> Iterator[TestClient]:
    """The API with room for a pasted page as a query (MEMORA_MAX_QUERY_CHARS=20000), in the test's transaction."""
    app = app_on(db, settings.model_copy(update={"max_query_chars": 20_000}), engine)
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("mode", ["text", "hybrid"])
def test_a_thousand_word_question_finds_what_its_one_known_word_names(
    api: TestClient, roomy: TestClient, mode: str
) -> None:
    body = {"query": thousand_words(), "mode": mode} | ({"embedding": QUERY} if mode == "hybrid" else {})
    refused = api.post(URL, json=body)  # the default limit, 4,000 characters
    response = roomy.post(URL, json=body)

    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "body.query"
    assert response.status_code == 200, response.text
    ids = [hit["external_id"] for hit in response.json()["results"]]
    assert {"lexical", "both"} <= set(ids)


@pytest.mark.parametrize("mode", ["text", "hybrid"])
def test_a_query_of_stop_words_only_is_no_text_match_not_an_error(api: TestClient, mode: str) -> None:
    body = {"query": "what is the of and to it", "mode": mode} | ({"embedding": QUERY} if mode == "hybrid" else {})
    response = api.post(URL, json=body)

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    if mode == "text":
        assert results == []
    else:  # the vector side still answers
        assert results[0]["external_id"] == "semantic"


@pytest.mark.parametrize("query", ["μυρμηγκοφάγος τρώει τερμίτες", "土豚吃白蚁", "آكل النمل يأكل النمل الأبيض"])
def test_a_query_in_another_script_is_answered(api: TestClient, query: str) -> None:
    text = api.post(URL, json={"query": query, "mode": "text"})
    hybrid = api.post(URL, json={"query": query, "mode": "hybrid", "embedding": QUERY})

    assert text.status_code == hybrid.status_code == 200, (text.text, hybrid.text)
    assert text.json()["results"] == []
    assert hybrid.json()["results"][0]["external_id"] == "semantic"


def test_an_empty_query_with_an_embedding_searches_by_the_vector_or_is_a_422_naming_query(api: TestClient) -> None:
    vector = api.post(URL, json={"query": "", "mode": "vector", "embedding": QUERY})
    text = api.post(URL, json={"query": "", "mode": "text"})

    assert vector.status_code in (200, 422), vector.text
    if vector.status_code == 200:
        assert vector.json()["results"][0]["external_id"] == "semantic"
    else:
        assert vector.json()["error"]["details"][0]["field"] == "body.query"
    assert text.status_code == 422
    assert text.json()["error"]["details"][0]["field"] == "body.query"
