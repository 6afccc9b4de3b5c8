"""The `rerank` option of search and answer, against a /v1/rerank served on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from tests.conftest import app_on
from tests.integration.rerank.test_rerank import KEY, MODEL, RERANK, overlap_scores
from tests.integration.search.test_api import CORPUS, document
from tests.openai_server import OpenAIServer

URL = "/v1/collections/kb/search"


@pytest.fixture
def api(settings: Settings, engine: Engine, db: Session, openai_server: OpenAIServer) -> Iterator[TestClient]:
    openai_server.api_key = KEY
    openai_server.route("POST", RERANK, overlap_scores)
    update = {"openai_base_url": openai_server.base_url, "openai_api_key": SecretStr(KEY), "openai_max_retries": 0}
    app = app_on(db, settings.model_copy(update=update), engine)
    with TestClient(app) as client:
        client.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 4})
        client.post("/v1/collections/kb/documents", json=[document(item) for item in CORPUS])
        yield client


def search(api: TestClient, **body: Any) -> Any:
    response = api.post(URL, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_rerank_reorders_the_fused_results_and_reports_both_ranks(api: TestClient, openai_server: OpenAIServer) -> None:
    plain = search(api, query="nocturnal savanna insectivores", embedding=[1.0, 0.0, 0.0, 0.0])
    reranked = search(
        api, query="nocturnal savanna insectivores", embedding=[1.0, 0.0, 0.0, 0.0], rerank={"model": MODEL}
    )

    assert reranked["results"][0]["external_id"] == "semantic"  # holds all three query words
    first = reranked["results"][0]
    assert first["score"] == first["scores"]["rerank"]["score"] == 3.0
    assert first["scores"]["rerank"]["rank"] == 1
    before = [r["external_id"] for r in plain["results"]]
    assert first["scores"]["rerank"]["original_rank"] == before.index("semantic") + 1
    sent = openai_server.requests_to(RERANK)[-1].json()
    assert (sent["model"], sent["query"]) == (MODEL, "nocturnal savanna insectivores")


def test_rerank_fetches_top_n_candidates_and_returns_k(api: TestClient) -> None:
    answer = search(api, query="aardvark", embedding=[1.0, 0.0, 0.0, 0.0], k=2, rerank={"model": MODEL, "top_n": 4})

    assert len(answer["results"]) == 2
    assert [r["scores"]["rerank"]["rank"] for r in answer["results"]] == [1, 2]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"embedding": [1.0, 0.0, 0.0, 0.0], "rerank": {"model": MODEL}}, "body.rerank"),
        ({"query": "aardvark", "rerank": {"model": MODEL, "provider": "local"}}, "body.rerank.provider"),
        ({"query": "aardvark", "rerank": {"model": MODEL, "top_n": 0}}, "body.rerank.top_n"),
        ({"query": "aardvark", "rerank": {}}, "body.rerank.model"),
    ],
)
def test_bad_rerank_options_are_422(api: TestClient, body: dict[str, Any], field: str) -> None:
    response = api.post(URL, json=body)

    assert response.status_code == 422
    assert any(p["field"].startswith(field) for p in response.json()["error"]["details"]), response.json()


def test_an_unknown_rerank_model_is_422_naming_the_field_with_the_servers_message(api: TestClient) -> None:
    """The server's 404 for a model the request named is the request's mistake (issue 13: no 5xx from any input)."""
    response = api.post(URL, json={"query": "aardvark", "rerank": {"model": "nope"}})

    assert response.status_code == 422
    [problem] = response.json()["error"]["details"]
    assert problem["field"] == "body.rerank.model"
    assert "The model `nope` does not exist" in problem["reason"]


def test_a_rerank_server_error_stays_502(api: TestClient, openai_server: OpenAIServer) -> None:
    openai_server.fail_next(1, 500, path="/v1/rerank")
    response = api.post(URL, json={"query": "aardvark", "rerank": {"model": "nope"}})

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "rerank_provider"
