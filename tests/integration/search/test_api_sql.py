"""`include: ["sql"]` on search: the response's `sql`, present only when asked for, runs to the same chunks in the
same order; refused with rerank."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.query import Query
from tests.integration.search.corpus import QUERY, URL, document, ids, search, store_corpus
from tests.schema import q

SAVE_DEFAULTS = Query(
    "UPDATE memora.collection SET metadata = jsonb_build_object('search_defaults', %(defaults)s::jsonb) "
    "WHERE name = 'kb'"
)
# Values a literal must survive: a quote, a backslash, a percent sign (no placeholder once mogrified).
ODD = "it's 100% a\\b"


@pytest.fixture(autouse=True)
def corpus(api: TestClient) -> None:
    store_corpus(api)
    odd = {"external_id": "odd", "title": "Odd", "content": "An aardvark's 100% burrow.", "vector": [0.5, 0.5, 0, 0]}
    odd |= {"metadata": {"source": ODD, "year": 2022}, "page": 1}
    stored = api.post("/v1/collections/kb/documents", json=[document(odd)])
    assert stored.json()["documents"][0]["status"] == "ready", stored.text


def chunk_ids_of(db: Session, sql: str) -> list[int]:
    """The chunk_id column of SQL's rows, run as psql would send it: the text alone, no parameters."""
    driver = db.connection().connection.driver_connection
    cursor = driver.execute(sql)
    names = [column.name for column in cursor.description]
    return [row[names.index("chunk_id")] for row in cursor.fetchall()]


def test_sql_is_absent_unless_included(api: TestClient) -> None:
    plain = search(api, query="aardvark", mode="text")
    others = search(api, query="aardvark", include=["text", "metadata", "highlights", "scores"])
    asked = search(api, query="aardvark", mode="text", include=["sql"])

    assert "sql" not in plain
    assert "sql" not in others
    assert asked["sql"].startswith("SELECT ")
    assert q("memora.search_text_v1('kb', 'aardvark', ") in asked["sql"]
    assert ids(asked) == ids(plain)


@pytest.mark.parametrize(
    "body",
    [
        {"query": "aardvark", "mode": "text"},
        {"query": ODD + " aardvark", "mode": "text", "filter": {"source": {"$in": [ODD, "arxiv"]}}},
        {"query": "aardvark", "mode": "text", "include": ["highlights", "scores"]},
        {"embedding": QUERY, "mode": "vector", "k": 3, "ef_search": 7},
        {"query": "nocturnal mammal", "mode": "vector", "filter": {"year": {"$gte": 2021}}},
        {"embedding": QUERY, "mode": "vector", "exact": True},
        {"query": "aardvark", "embedding": QUERY, "k": 4},
        {"query": "aardvark", "k": 3, "fusion": "rrf", "rrf_k": 1, "weights": {"text": 2, "vector": 1}},
        {"query": "aardvark", "embedding": QUERY, "k": 2, "candidates": 2, "filter": {"source": ODD}, "ef_search": 12},
        {"query": "aardvark", "weights": {"text": 1, "vector": 0}, "include": ["highlights"]},
        {"embedding": QUERY, "mode": "hybrid", "k": 2},
    ],
)
def test_sql_returns_the_chunks_of_the_search_in_its_order(api: TestClient, db: Session, body: dict[str, Any]) -> None:
    include = [*body.pop("include", []), "sql"]
    answer = search(api, **body, include=include)

    assert answer["results"]
    assert chunk_ids_of(db, answer["sql"]) == [result["chunk_id"] for result in answer["results"]]


def test_sql_carries_the_pinned_version_ef_search_and_the_vector_as_float4_text(api: TestClient) -> None:
    answer = search(api, embedding=[0.1, 0.2, 0.3, 0.4], mode="vector", k=2, ef_search=9, include=["sql"])

    # str(float(float32)) of each component, which reads back to the same float4; untyped, so psql needs no
    # `vector` on its search_path (the function's parameter types it).
    vector = "'[0.10000000149011612,0.20000000298023224,0.30000001192092896,0.4000000059604645]'"
    assert q(f"memora.search_vector_v2('kb', {vector}, 2::integer, NULL::jsonb, 9::integer, ") in answer["sql"]
    assert answer["sql"].endswith(f"false::boolean, {answer['embedding_version']}::integer);")


def test_sql_carries_the_collections_saved_hybrid_defaults(api: TestClient, db: Session) -> None:
    defaults = {"fusion": "rrf", "rrf_k": 3, "weights": {"text": 0.25, "vector": 1}, "candidates_factor": 2}
    SAVE_DEFAULTS.run(db, {"defaults": json.dumps(defaults)})

    answer = search(api, query="aardvark nocturnal", embedding=QUERY, k=2, include=["sql"])
    overridden = search(api, query="aardvark nocturnal", embedding=QUERY, k=2, fusion="convex", include=["sql"])

    assert "'rrf'::text, 3::integer, 0.25::float8, 1.0::float8, 4::integer" in answer["sql"]
    assert "'convex'::text, 3::integer, 0.25::float8, 1.0::float8, 4::integer" in overridden["sql"]
    assert chunk_ids_of(db, answer["sql"]) == [result["chunk_id"] for result in answer["results"]]


def test_sql_with_rerank_is_refused_naming_include(api: TestClient) -> None:
    response = api.post(URL, json={"query": "aardvark", "rerank": {"model": "any"}, "include": ["text", "sql"]})

    assert response.status_code == 422
    error = response.json()["error"]
    assert [detail["field"] for detail in error["details"]] == ["body.include"]
    assert "rerank" in error["message"]


def test_unknown_include_is_refused_naming_it(api: TestClient) -> None:
    response = api.post(URL, json={"query": "aardvark", "include": ["sql", "plan"]})

    assert response.status_code == 422
    assert "include" in response.text
