"""POST /v1/collections/{name}/search when something is wrong: bad input, an unknown collection, SQL injection, a
failing embedding provider, a k past the limit."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.query import Query
from tests.conftest import app_on
from tests.integration.search.corpus import CORPUS, QUERY, URL, document, ids, search, store_corpus
from tests.openai_server import OpenAIServer


@pytest.fixture(autouse=True)
def corpus(api: TestClient) -> None:
    store_corpus(api)


# Bad input: 422 naming the field, 404 for an unknown collection.


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": "   "}, "body.query"),
        ({}, "body.query"),
        ({"query": "", "mode": "vector"}, "body.query"),
        ({"embedding": QUERY, "mode": "text"}, "body.query"),
        ({"query": "x", "embedding": QUERY, "mode": "text"}, "body.embedding"),
        ({"query": "x", "mode": "fuzzy"}, "body.mode"),
        ({"query": "nul \u0000 inside"}, "body.query"),
        ({"query": "x", "k": 0}, "body.k"),
        ({"query": "x", "k": 101}, "body.k"),
        ({"query": "x", "k": "ten"}, "body.k"),
        ({"embedding": [1.0, 0.0]}, "body.embedding"),
        ({"embedding": [1.0, 0.0], "mode": "vector"}, "body.embedding"),
        ({"query": "x", "embedding": [1.0] * 5, "mode": "hybrid"}, "body.embedding"),
        ({"embedding": []}, "body.embedding"),
        ({"embedding": [1e39, 0, 0, 0]}, "body.embedding.0"),
        ({"embedding": ["a", 0, 0, 0]}, "body.embedding.0"),
        ({"query": "x", "weights": {"text": 0, "vector": 0}}, "body.weights"),
        ({"query": "x", "weights": {"text": -1}}, "body.weights.text"),
        ({"query": "x", "weights": {"bm25": 1}}, "body.weights.bm25"),
        ({"query": "x", "rrf_k": -1}, "body.rrf_k"),
        ({"query": "x", "fusion": "borda"}, "body.fusion"),
        ({"query": "x", "k": 10, "candidates": 5}, "body.candidates"),
        ({"query": "x", "candidates": 10_001}, "body.candidates"),
        ({"query": "x", "ef_search": 0}, "body.ef_search"),
        ({"query": "x", "include": ["everything"]}, "body.include.0"),
        ({"query": "x", "limit": 3}, "body.limit"),
        ({"query": "x", "filter": [1]}, "body.filter"),
        ({"query": "x", "filter": {"k": "a\u0000b"}}, "body.filter"),
        ({"query": "x", "filter": {"$and": {"a": 1}}}, "body.filter.$and"),
        ({"query": "x", "filter": {"$and": []}}, "body.filter.$and"),
        ({"query": "x", "filter": {"$and": [{"a": 1}, {"year": {"$gt": [2020]}}]}}, "body.filter.$and[1].year.$gt"),
        ({"query": "x", "filter": {"year": {"$regex": "^20"}}}, "body.filter.year.$regex"),
        ({"query": "x", "filter": {"$where": "1"}}, "body.filter.$where"),
        ({"query": "unknownword", "mode": "text", "filter": {"$where": "1"}}, "body.filter.$where"),
        ({"query": "x", "filter": {"year": {"$in": 2020}}}, "body.filter.year.$in"),
        ({"query": "x", "filter": {"year": {"$exists": 1}}}, "body.filter.year.$exists"),
        ({"query": "x", "filter": {"a..b": 1}}, "body.filter.a..b"),
        ({"query": "x", "filter": {"$or": [{"$not": 1}]}}, "body.filter.$or[0].$not"),
        ({"query": "x", "filter": {"document.owner": "me"}}, "body.filter.document.owner"),
        ({"query": "x", "filter": {"document.version": "1"}}, "body.filter.document.version.$eq"),
        ({"query": "x", "filter": {"document.created_at": {"$gte": "not a date"}}},
         "body.filter.document.created_at.$gte"),
    ],
)  # fmt: skip
def test_bad_input_is_422_naming_the_field(api: TestClient, body: dict[str, Any], field: str) -> None:
    response = api.post(URL, json=body)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in [problem["field"] for problem in error["details"]], error


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"embedding": [NaN, 0, 0, 0]}', "body.embedding.0"),
        (b'{"embedding": [1, Infinity, 0, 0]}', "body.embedding.1"),
        (b'{"query": "x", "weights": {"text": Infinity}}', "body.weights.text"),
        (b'{"query": "x", "weights": {"vector": NaN}}', "body.weights.vector"),
        (b'{"query": "x", "filter": {"year": {"$gt": NaN}}}', "body.filter"),
        (b'{"query": "lone \\ud800 surrogate", "mode": "text"}', "body.query"),
        (b'{"query": "x", "filter": {"k\\udc00": 1}}', "body.filter"),
    ],
)
def test_nan_infinity_and_lone_surrogates_are_422(api: TestClient, raw: bytes, field: str) -> None:
    response = api.post(URL, content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 422, response.text
    assert field in [problem["field"] for problem in response.json()["error"]["details"]]


def test_the_sql_message_is_the_reason(api: TestClient) -> None:
    response = api.post(URL, json={"embedding": [1.0, 0.0], "mode": "vector"})

    assert response.json()["error"] == {
        "code": "invalid_input",
        "message": "body.embedding: has 2 dimensions; collection 'kb' has 4",
        "details": [{"field": "body.embedding", "reason": "has 2 dimensions; collection 'kb' has 4"}],
    }


@pytest.mark.parametrize(
    "body", [{"query": "aardvark"}, {"query": "aardvark", "mode": "text"}, {"embedding": QUERY, "mode": "vector"}]
)
def test_unknown_collection_is_404(api: TestClient, body: dict[str, Any]) -> None:
    response = api.post("/v1/collections/nope/search", json=body)

    assert response.status_code == 404
    assert response.json()["error"] == {"code": "not_found", "message": "no collection named 'nope'"}


def test_an_error_leaves_the_request_session_usable(api: TestClient) -> None:
    bad = api.post(URL, json={"query": "x", "filter": {"$bad": 1}})
    good = api.post(URL, json={"query": "aardvark", "mode": "text"})

    assert bad.status_code == 422
    assert ids(good.json()) == ["lexical", "both"]


# SQL injection: keys and values of filters, queries and names are data, never SQL.

INJECTIONS = ["') OR 1=1 --", "x'; DROP TABLE chunk; --", '"; DELETE FROM document; --', "x$1]); --", "\\'; --"]


@pytest.mark.parametrize("attack", INJECTIONS)
def test_injection_in_filter_keys_and_values_is_plain_data(
    api: TestClient, connection: Connection, attack: str
) -> None:
    api.post(
        "/v1/collections/kb/documents",
        json=document(CORPUS[3] | {"external_id": "odd", "metadata": {attack: attack, "note": f"it's {attack}"}}),
    )
    counts = Query("SELECT (SELECT count(*) FROM memora.chunk), (SELECT count(*) FROM memora.document)")
    before = tuple(counts.run(connection).one())

    filters = [
        {"source": attack},
        {attack: "pubmed"},
        {f"{attack}.nested": 1},
        {"source": {"$in": [attack, "pubmed"]}},
        {"$or": [{"source": attack}, {"year": {"$gt": attack}}]},
        {"document.external_id": attack},
        {f"chunk.{attack}": {"$exists": True}},
    ]
    answers = [set(ids(search(api, query="aardvark savanna markets", embedding=QUERY, filter=f))) for f in filters]
    matching_key = search(api, embedding=QUERY, mode="vector", filter={attack: attack})
    matching_value = search(api, embedding=QUERY, mode="vector", filter={"note": f"it's {attack}"})
    in_query = search(api, query=attack, mode="text")
    in_operator = api.post(URL, json={"query": "x", "filter": {"year": {f"${attack}": 1}}})
    in_document_field = api.post(URL, json={"query": "x", "filter": {f"document.{attack}": 1}})
    in_name = api.post(f"/v1/collections/kb{attack}/search", json={"query": "aardvark"})
    in_name_sql = api.post(f"/v1/collections/kb{attack}/search", json={"embedding": QUERY, "mode": "vector"})

    assert answers == [set(), set(), set(), {"lexical", "semantic"}, set(), set(), set()]
    assert ids(matching_key) == ["odd"]
    assert ids(matching_value) == ["odd"]
    assert ids(in_query) == []
    assert in_operator.status_code == 422
    assert in_operator.json()["error"]["details"][0]["field"] == f"body.filter.year.${attack}"
    assert in_document_field.status_code == 422
    assert (in_name.status_code, in_name_sql.status_code) == (404, 404)
    assert tuple(counts.run(connection).one()) == before


def test_embedding_provider_failure_is_502(
    settings: Settings, engine: Engine, db: Session, openai_server: OpenAIServer
) -> None:
    remote = settings.model_copy(
        update={
            "openai_base_url": openai_server.base_url,
            "openai_api_key": SecretStr("sk-test"),
            "openai_max_retries": 0,
        }
    )
    with client(remote, engine, db) as api:
        created = api.post(
            "/v1/collections",
            json={"name": "remote", "embedding_provider": "openai", "embedding_model": "text-embedding-3-small",
                  "dimensions": 8},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        works = api.post("/v1/collections/remote/search", json={"query": "aardvark", "mode": "vector"})
        openai_server.fail_next(status=500)
        fails = api.post("/v1/collections/remote/search", json={"query": "aardvark", "mode": "vector"})

    assert works.status_code == 200, works.text
    assert len(openai_server.requests_to("/v1/embeddings")) == 2
    assert fails.status_code == 502
    assert fails.json()["error"]["code"] == "embedding_provider"


def test_max_k_is_a_setting(settings: Settings, engine: Engine, db: Session) -> None:
    small = settings.model_copy(update={"search_max_k": 2})
    with client(small, engine, db) as api:
        too_many = api.post(URL, json={"embedding": QUERY, "k": 3})
        enough = api.post(URL, json={"embedding": QUERY, "k": 2})

    assert too_many.status_code == 422
    assert "MEMORA_SEARCH_MAX_K" in too_many.json()["error"]["message"]
    assert enough.status_code == 200


def client(settings: Settings, engine: Engine, db: Session) -> TestClient:
    """A client of an app with other settings, sharing the test's rolled-back transaction."""
    app = app_on(db, settings, engine)
    return TestClient(app)


def test_the_endpoint_is_in_the_openapi_schema(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()

    operation = schema["paths"]["/v1/collections/{name}/search"]["post"]
    assert set(operation["responses"]) >= {"200", "404", "422", "502"}
    assert "SearchResponse" in schema["components"]["schemas"]
    assert "SearchRequest" in schema["components"]["schemas"]
