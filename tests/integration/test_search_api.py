"""POST /v1/collections/{name}/search over HTTP: the three modes, filters, include, highlights, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from app.api.deps import get_session
from app.api.main import create_app
from app.config import Settings
from app.db.engine import make_engine
from app.embeddings.hashing import HashingEmbedder
from app.ingest.worker import Worker
from tests.openai_server import OpenAIServer

URL = "/v1/collections/kb/search"
QUERY = [1.0, 0.0, 0.0, 0.0]

# A corpus designed for the query "aardvark" with the vector QUERY (cosine, 4 dimensions):
#   lexical   says aardvark twice, points away from QUERY         text rank 1, vector rank 4
#   both      says aardvark once, points almost along QUERY       text rank 2, vector rank 2
#   semantic  no aardvark, points along QUERY                     no text rank, vector rank 1
#   neither   no aardvark, orthogonal to QUERY                    no text rank, vector rank 3
CORPUS: list[dict[str, Any]] = [
    {
        "external_id": "lexical",
        "title": "Termites",
        "content": "The aardvark digs, and the aardvark eats termites at night.",
        "metadata": {"year": 2019, "source": "pubmed", "tags": ["zoology", "africa"], "lab": {"city": "Oslo"}},
        "vector": [-1.0, 0.0, 0.0, 0.0],
        "page": 1,
    },
    {
        "external_id": "both",
        "title": "Mammals",
        "content": "An aardvark is a nocturnal mammal.",
        "metadata": {"year": 2021, "source": "arxiv", "tags": ["zoology"], "reviewed": True},
        "vector": [0.9, 0.1, 0.0, 0.0],
        "page": 2,
    },
    {
        "external_id": "semantic",
        "title": "Insects",
        "content": "Nocturnal insectivores of the savanna.",
        "metadata": {"year": 2023, "source": "pubmed", "tags": ["africa"]},
        "vector": [1.0, 0.0, 0.0, 0.0],
        "page": 3,
    },
    {
        "external_id": "neither",
        "title": "Markets",
        "content": "Stock markets fell sharply today.",
        "metadata": {"year": 2020, "source": "news"},
        "vector": [0.0, 1.0, 0.0, 0.0],
        "page": 3,
    },
]


def document(item: dict[str, Any]) -> dict[str, Any]:
    """A document of CORPUS as the documents API takes it: one chunk, its vector, its page."""
    chunk = {"text": item["content"], "embedding": item["vector"], "metadata": {"page": item["page"]}}
    fields = {key: item[key] for key in ("external_id", "title", "content", "metadata")}
    return fields | {"chunks": [chunk]}


@pytest.fixture(autouse=True)
def corpus(api: TestClient) -> None:
    created = api.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 4})
    assert created.status_code == 201, created.text
    stored = api.post("/v1/collections/kb/documents", json=[document(item) for item in CORPUS])
    assert [doc["status"] for doc in stored.json()["documents"]] == ["ready"] * len(CORPUS)


def search(api: TestClient, **body: Any) -> Any:
    response = api.post(URL, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def ids(answer: Any) -> list[str]:
    return [result["external_id"] for result in answer["results"]]


def test_text_search_ranks_by_bm25(api: TestClient) -> None:
    answer = search(api, query="aardvark", mode="text")

    assert ids(answer) == ["lexical", "both"]
    assert (answer["mode"], answer["k"]) == ("text", 10)
    first = answer["results"][0]
    assert first["scores"] == {"text": {"rank": 1, "score": first["score"]}}
    assert first["score"] > answer["results"][1]["score"] > 0


def test_vector_search_ranks_by_similarity(api: TestClient) -> None:
    answer = search(api, embedding=QUERY, mode="vector", k=3)

    assert ids(answer) == ["semantic", "both", "neither"]
    top = answer["results"][0]
    assert top["score"] == pytest.approx(1.0)
    assert top["scores"]["vector"] == {"rank": 1, "score": pytest.approx(1.0), "distance": pytest.approx(0.0)}
    assert "text" not in top["scores"]


def test_hybrid_search_fuses_min_max_scores_by_default(api: TestClient) -> None:
    answer = search(api, query="aardvark", embedding=QUERY, k=4)

    assert answer["mode"] == "hybrid"
    fused = {result["external_id"]: result["scores"]["fused"] for result in answer["results"]}
    # Each ranking scaled to [0, 1] over its candidates: text lexical 1, both 0 (the lower of two); vector semantic 1,
    # both (0.9 / |(0.9, 0.1)| + 1) / 2, neither 1 / 2, lexical 0 (cosine -1). Absent from a ranking scores 0 there.
    both_vector = (0.9 / (0.9**2 + 0.1**2) ** 0.5 + 1) / 2
    assert fused == pytest.approx({"lexical": 0.5, "semantic": 0.5, "both": both_vector / 2, "neither": 0.25})
    assert ids(answer)[2:] == ["both", "neither"]
    assert [result["score"] for result in answer["results"]] == list(fused.values())
    assert answer["results"][0]["scores"]["text"]["rank"] == 1


def test_hybrid_search_fuses_both_rankings_by_rrf(api: TestClient) -> None:
    answer = search(api, query="aardvark", embedding=QUERY, k=4, fusion="rrf")

    assert answer["mode"] == "hybrid"
    assert ids(answer) == ["both", "lexical", "semantic", "neither"]
    scores = {result["external_id"]: result["scores"] for result in answer["results"]}
    assert (scores["both"]["text"]["rank"], scores["both"]["vector"]["rank"]) == (2, 2)
    assert (scores["lexical"]["text"]["rank"], scores["lexical"]["vector"]["rank"]) == (1, 4)
    assert scores["semantic"]["text"] is None
    assert scores["semantic"]["vector"]["rank"] == 1
    assert scores["both"]["fused"] == pytest.approx(2 / 62)
    assert answer["results"][0]["score"] == scores["both"]["fused"]


def test_hybrid_weights_and_rrf_k_change_the_fusion(api: TestClient) -> None:
    text_heavy = search(api, query="aardvark", embedding=QUERY, k=2, fusion="rrf", weights={"text": 3, "vector": 1})
    rrf_k_zero = search(api, query="aardvark", embedding=QUERY, k=1, fusion="rrf", rrf_k=0)

    assert ids(text_heavy) == ["lexical", "both"]
    assert ids(rrf_k_zero) == ["lexical"]
    assert rrf_k_zero["results"][0]["scores"]["fused"] == pytest.approx(1 / 1 + 1 / 4)


def test_hybrid_weights_change_the_convex_fusion(api: TestClient) -> None:
    text_heavy = search(api, query="aardvark", embedding=QUERY, k=2, weights={"text": 3, "vector": 1})
    vector_heavy = search(api, query="aardvark", embedding=QUERY, k=2, weights={"text": 1, "vector": 3})

    assert ids(text_heavy) == ["lexical", "semantic"]
    assert text_heavy["results"][0]["score"] == pytest.approx(3 / 4)
    assert ids(vector_heavy) == ["semantic", "both"]
    assert vector_heavy["results"][0]["score"] == pytest.approx(3 / 4)


def test_without_an_embedding_the_query_is_embedded_with_the_collections_model(api: TestClient) -> None:
    own = HashingEmbedder(4).embed(["nocturnal mammal"])[0].tolist()

    embedded = search(api, query="nocturnal mammal", mode="vector", include=["scores"])
    given = search(api, query="nocturnal mammal", mode="vector", embedding=own, include=["scores"])
    hybrid = search(api, query="nocturnal mammal")

    assert embedded == given | {"took_ms": embedded["took_ms"]}
    assert len(embedded["results"]) == 4
    assert hybrid["mode"] == "hybrid"
    assert all(result["scores"]["vector"] is not None for result in hybrid["results"])


def test_hybrid_with_an_embedding_and_no_query_runs_as_vector(api: TestClient) -> None:
    answer = search(api, embedding=QUERY, k=2)

    assert answer["mode"] == "vector"
    assert ids(answer) == ["semantic", "both"]


def test_results_carry_offsets_and_ids(api: TestClient, connection: Connection) -> None:
    result = search(api, query="mammal", mode="text")["results"][0]

    chunk = connection.execute(
        text(
            "SELECT c.id, c.document_id FROM memora.chunk c JOIN memora.document d ON d.id = c.document_id "
            "WHERE d.external_id = 'both'"
        )
    ).one()
    assert (result["chunk_id"], result["document_id"]) == tuple(chunk)
    assert (result["ordinal"], result["char_start"], result["char_end"]) == (0, 0, len(CORPUS[1]["content"]))
    assert result["title"] == "Mammals"
    assert result["text"] == CORPUS[1]["content"]
    assert result["metadata"] == CORPUS[1]["metadata"]
    assert result["chunk_metadata"] == {"page": 2}


def test_include_picks_the_fields_of_each_result(api: TestClient) -> None:
    default = search(api, query="aardvark", mode="text")["results"][0]
    bare = search(api, query="aardvark", mode="text", include=[])["results"][0]
    highlighted = search(api, query="aardvark", mode="text", include=["highlights"])["results"][0]

    always = {"chunk_id", "document_id", "external_id", "ordinal", "char_start", "char_end", "title", "score"}
    assert set(default) == always | {"text", "metadata", "chunk_metadata", "scores"}
    assert set(bare) == always
    assert set(highlighted) == always | {"highlight"}


def test_highlights_mark_the_query_terms(api: TestClient) -> None:
    text_results = search(api, query="aardvarks eating", mode="text", include=["highlights"])["results"]
    vector_only = search(api, embedding=QUERY, mode="vector", k=1, include=["highlights"])["results"]

    assert text_results[0]["highlight"] == (
        "The <b>aardvark</b> digs, and the <b>aardvark</b> <b>eats</b> termites at night."
    )
    assert vector_only[0]["highlight"] is None


def test_highlights_are_escaped_html(api: TestClient) -> None:
    content = "An <img src=x onerror=alert(1)> aardvark & friends."
    api.post("/v1/collections/kb/documents", json=document(CORPUS[0] | {"external_id": "html", "content": content}))

    results = search(
        api, query="aardvark", mode="text", include=["highlights"], filter={"document.external_id": "html"}
    )

    highlight = results["results"][0]["highlight"]
    assert highlight == "An &lt;img src=x onerror=alert(1)&gt; <b>aardvark</b> &amp; friends."


def test_a_query_of_stop_words_finds_nothing_by_text(api: TestClient) -> None:
    assert search(api, query="the and of", mode="text")["results"] == []


# Filters: each must restrict both branches of the search.

FILTERS: list[tuple[dict[str, Any], set[str]]] = [
    ({"source": "pubmed"}, {"lexical", "semantic"}),
    ({"tags": "zoology"}, {"lexical", "both"}),
    ({"source": {"$in": ["arxiv", "news"]}}, {"both", "neither"}),
    ({"source": {"$nin": ["arxiv", "news"]}}, {"lexical", "semantic"}),
    ({"source": {"$ne": "pubmed"}}, {"both", "neither"}),
    ({"year": {"$gte": 2020, "$lt": 2023}}, {"both", "neither"}),
    ({"year": {"$gt": 2021}}, {"semantic"}),
    ({"year": {"$lte": 2019}}, {"lexical"}),
    ({"reviewed": {"$exists": True}}, {"both"}),
    ({"reviewed": {"$exists": False}}, {"lexical", "semantic", "neither"}),
    ({"lab.city": "Oslo"}, {"lexical"}),
    ({"$and": [{"source": "pubmed"}, {"year": {"$gt": 2020}}]}, {"semantic"}),
    ({"$or": [{"source": "news"}, {"year": 2019}]}, {"lexical", "neither"}),
    ({"$not": {"source": "pubmed"}}, {"both", "neither"}),
    ({"$not": {"$or": [{"tags": "africa"}, {"source": "news"}]}}, {"both"}),
    ({"source": "pubmed", "tags": "zoology"}, {"lexical"}),
    ({"document.external_id": {"$in": ["both", "neither"]}}, {"both", "neither"}),
    ({"document.title": "Markets"}, {"neither"}),
    ({"document.version": 1, "document.content_type": "text/plain"}, {"lexical", "both", "semantic", "neither"}),
    ({"document.created_at": {"$lt": "2000-01-01T00:00:00Z"}}, set()),
    ({"chunk.page": 3}, {"semantic", "neither"}),
    ({"chunk.page": {"$lt": 3}}, {"lexical", "both"}),
    ({"year": {"$gt": "2000"}}, set()),
]


@pytest.mark.parametrize(("filter_", "expected"), FILTERS)
def test_filters_restrict_every_mode(api: TestClient, filter_: dict[str, Any], expected: set[str]) -> None:
    # "eats aardvark savanna markets" matches every document by text, and QUERY reaches every vector.
    query = "aardvark savanna markets"
    text_ids = ids(search(api, query=query, mode="text", filter=filter_))
    vector_ids = ids(search(api, embedding=QUERY, mode="vector", filter=filter_))
    exact_ids = ids(search(api, embedding=QUERY, mode="vector", filter=filter_, exact=True))
    hybrid = search(api, query=query, embedding=QUERY, filter=filter_)

    assert set(text_ids) == expected
    assert set(vector_ids) == expected
    assert exact_ids == vector_ids
    assert set(ids(hybrid)) == expected
    for result in hybrid["results"]:
        assert result["scores"]["text"] is not None
        assert result["scores"]["vector"] is not None


def test_a_selective_filter_still_returns_k_results(api: TestClient) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(400, 4))
    # The 6 rare documents point away from the query: an index scan that stopped at ef_search would miss them.
    body = [
        {
            "external_id": f"bulk-{i}",
            "content": f"Filler number {i} about aardvark burrows.",
            "metadata": {"kind": "rare" if i % 67 == 0 else "common"},
            "chunks": [
                {
                    "text": f"Filler number {i} about aardvark burrows.",
                    "embedding": ([-1.0, 0.0, 0.0, 0.1] if i % 67 == 0 else vectors[i].tolist()),
                }
            ],
        }
        for i in range(400)
    ]
    assert api.post("/v1/collections/kb/documents", json=body).status_code == 202
    rare = {"kind": "rare"}

    vector = search(api, embedding=QUERY, mode="vector", k=5, filter=rare, ef_search=10)
    text_answer = search(api, query="aardvark burrows", mode="text", k=5, filter=rare)
    hybrid = search(api, query="aardvark burrows", embedding=QUERY, k=5, filter=rare, ef_search=10)

    for answer in (vector, text_answer, hybrid):
        assert len(answer["results"]) == 5
        assert all(result["metadata"] == rare for result in answer["results"])


def test_k_limits_the_results(api: TestClient) -> None:
    assert len(search(api, embedding=QUERY, mode="vector", k=2)["results"]) == 2
    assert len(search(api, query="aardvark savanna markets", k=3)["results"]) == 3


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
    counts = "SELECT (SELECT count(*) FROM memora.chunk), (SELECT count(*) FROM memora.document)"
    before = tuple(connection.execute(text(counts)).one())

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
    assert tuple(connection.execute(text(counts)).one()) == before


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
    app = create_app(settings, engine=engine)

    def session() -> Iterator[Session]:
        yield db
        db.flush()

    app.dependency_overrides[get_session] = session
    return TestClient(app)


def test_the_endpoint_is_in_the_openapi_schema(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()

    operation = schema["paths"]["/v1/collections/{name}/search"]["post"]
    assert set(operation["responses"]) >= {"200", "404", "422", "502"}
    assert "SearchResponse" in schema["components"]["schemas"]
    assert "SearchRequest" in schema["components"]["schemas"]


def test_bm25_parameters_of_the_collection_are_used(api: TestClient) -> None:
    before = search(api, query="aardvark", mode="text")["results"]
    assert api.patch("/v1/collections/kb", json={"bm25_k1": 0}).status_code == 200
    after = search(api, query="aardvark", mode="text")["results"]

    # k1 = 0: a term counts once however often it occurs, so the two matches tie on idf alone.
    assert before[0]["score"] > before[1]["score"]
    assert after[0]["score"] == pytest.approx(after[1]["score"])


# BM25 statistics through the API's write paths: given chunks, the worker's (re-)chunking, deletes.


def text_statistics(conn: Connection, name: str) -> tuple[Any, dict[str, int]]:
    """The collection's stored BM25 statistics: (chunks, total_length) and each lexeme's document frequency."""
    params = {"name": name}
    collection = "(SELECT id FROM memora.collection WHERE name = :name)"
    stored = conn.execute(
        text(f"SELECT chunks, total_length FROM memora.text_stats WHERE collection_id = {collection}"), params
    ).one_or_none()
    terms = conn.execute(text(f"SELECT lexeme, df FROM memora.term_stats WHERE collection_id = {collection}"), params)
    return (tuple(stored) if stored and stored[0] else None), {lexeme: df for lexeme, df in terms}


def recounted(conn: Connection, name: str) -> tuple[Any, dict[str, int]]:
    """The same statistics, counted from the collection's chunks."""
    params = {"name": name}
    chunks = "memora.chunk c JOIN memora.collection col ON col.id = c.collection_id AND col.name = :name"
    totals = conn.execute(text(f"SELECT count(*), sum(length(c.tsv)) FROM {chunks}"), params).one()
    terms = conn.execute(text(f"SELECT u.lexeme, count(*) FROM {chunks}, unnest(c.tsv) u GROUP BY u.lexeme"), params)
    return (tuple(totals) if totals[0] else None), {lexeme: df for lexeme, df in terms}


def test_statistics_follow_given_chunks_edits_and_deletes(api: TestClient, connection: Connection) -> None:
    assert text_statistics(connection, "kb") == recounted(connection, "kb")
    assert text_statistics(connection, "kb")[0][0] == len(CORPUS)

    edited = CORPUS[1] | {"content": "An aardvark is a burrowing nocturnal mammal of Africa."}
    updated = api.post("/v1/collections/kb/documents", json=document(edited)).json()["documents"][0]
    connection.execute(text("UPDATE memora.chunk SET text = text || ' brandnewterm' WHERE char_start = 0"))
    assert api.delete("/v1/collections/kb/documents/neither").status_code == 204
    after_edits = text_statistics(connection, "kb")

    assert updated["action"] == "updated"
    assert after_edits == recounted(connection, "kb")
    assert after_edits[0][0] == len(CORPUS) - 1
    assert after_edits[1]["brandnewterm"] == len(CORPUS) - 1
    assert after_edits[1]["burrow"] == 1
    assert "market" not in after_edits[1]
    assert api.delete("/v1/collections/kb").status_code == 204
    assert connection.execute(text("SELECT count(*) FROM memora.text_stats")).scalar() == 0
    assert connection.execute(text("SELECT count(*) FROM memora.term_stats")).scalar() == 0


PARAGRAPHS = [f"Paragraph {i} is about burrowing animal number {i} and its habits." for i in range(8)]


def test_statistics_follow_the_workers_chunking(fresh_db_url: str) -> None:
    settings = Settings(database_url=fresh_db_url)
    engine = make_engine(settings, "api")
    worker = Worker(settings, engine)
    collection = {"name": "wk", "embedding_provider": "hashing", "chunking": {"size": 24, "overlap": 0}}

    def drain() -> None:
        while worker.run_once():
            pass

    def check() -> tuple[Any, dict[str, int]]:
        with engine.connect() as conn:
            stored = text_statistics(conn, "wk")
            assert stored == recounted(conn, "wk")
            return stored

    try:
        with TestClient(create_app(settings, engine=engine)) as api:
            assert api.post("/v1/collections", json=collection).status_code == 201
            docs = [{"external_id": f"d{i}", "content": "\n\n".join(PARAGRAPHS[i:])} for i in range(3)]
            api.post("/v1/collections/wk/documents", json=docs)
            drain()
            first = check()
            edited = [*PARAGRAPHS[:3], "A middle paragraph replaced by something on pangolins.", *PARAGRAPHS[4:]]
            api.post("/v1/collections/wk/documents", json={"external_id": "d0", "content": "\n\n".join(edited)})
            drain()
            after_edit = check()
            api.delete("/v1/collections/wk/documents/d1")
            after_delete = check()
            api.patch("/v1/collections/wk", json={"chunking": {"size": 48, "overlap": 8}})
            drain()
            rechunked = check()
            api.patch("/v1/collections/wk", json={"language": "simple"})
            relanguaged = check()
            found = api.post("/v1/collections/wk/search", json={"query": "pangolins", "mode": "text"}).json()
            api.delete("/v1/collections/wk")
            with engine.connect() as conn:
                left = [
                    conn.execute(text(f"SELECT count(*) FROM memora.{t}")).scalar()
                    for t in ("text_stats", "term_stats")
                ]
    finally:
        engine.dispose()

    assert first[0][0] > 3
    assert "pangolin" not in first[1]
    assert "pangolin" in after_edit[1]
    assert after_delete[0][0] < after_edit[0][0]
    assert rechunked[0][0] < after_delete[0][0]
    assert "pangolins" in relanguaged[1]  # the simple configuration does not stem
    assert "pangolin" not in relanguaged[1]
    assert {result["external_id"] for result in found["results"]} == {"d0"}
    assert left == [0, 0]


def test_hybrid_takes_the_collections_saved_defaults_for_what_a_request_leaves_unset(
    api: TestClient, connection: Connection
) -> None:
    saved = '{"fusion": "rrf", "rrf_k": 10, "weights": {"text": 1, "vector": 1}, "candidates_factor": 4}'
    connection.execute(
        text("UPDATE memora.collection SET metadata = jsonb_build_object('search_defaults', CAST(:v AS jsonb))"),
        {"v": saved},
    )

    tuned = search(api, query="aardvark", embedding=QUERY)
    explicit = search(api, query="aardvark", embedding=QUERY, fusion="convex")

    first = tuned["results"][0]
    ranks = [first["scores"][side]["rank"] for side in ("text", "vector") if first["scores"].get(side)]
    assert first["score"] == pytest.approx(sum(1 / (10 + rank) for rank in ranks))
    assert explicit["results"][0]["scores"]["fused"] <= 2.0  # convex: at most the sum of the weights
    assert explicit["results"][0]["score"] != pytest.approx(first["score"])


def test_saved_defaults_apply_when_the_query_is_embedded_too(api: TestClient, connection: Connection) -> None:
    connection.execute(
        text('UPDATE memora.collection SET metadata = \'{"search_defaults": {"fusion": "rrf", "rrf_k": 10}}\'')
    )

    first = search(api, query="aardvark")["results"][0]

    ranks = [first["scores"][side]["rank"] for side in ("text", "vector") if first["scores"].get(side)]
    assert first["score"] == pytest.approx(sum(1 / (10 + rank) for rank in ranks))
