"""POST /v1/collections/{name}/search over HTTP: the three modes, fusion, results, include, highlights, filters."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.query import Query
from app.embeddings.hashing import HashingEmbedder
from app.search import query_embedding, repository
from app.search.service import _highlight
from tests.integration.search.corpus import CORPUS, QUERY, document, ids, search, store_corpus


@pytest.fixture(autouse=True)
def corpus(api: TestClient) -> None:
    store_corpus(api)


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


@pytest.mark.parametrize("mode", ["hybrid", "vector"])
def test_the_query_embedded_during_the_lookup_gives_the_same_results(
    api: TestClient, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The first search looks the collection up, then embeds; the next starts embedding with the model it learnt
    while looking up again. Both answer as a search given the vector does."""
    monkeypatch.setattr(query_embedding, "_MODELS", {})
    threads: list[str] = []
    embed = query_embedding._embed

    def spied(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return embed(*args)

    monkeypatch.setattr(query_embedding, "_embed", spied)
    own = HashingEmbedder(4).embed(["nocturnal aardvark"])[0].tolist()
    body = {"query": "nocturnal aardvark", "mode": mode, "include": ["text", "scores", "highlights"]}

    cold = search(api, **body)
    learnt = dict(query_embedding._MODELS)
    warm = search(api, **body)
    given = search(api, **body, embedding=own)

    assert learnt == {"kb": ("hashing", "hashing", 4)}
    assert len(threads) == 2
    assert not threads[0].startswith("memora-embed")
    assert threads[1].startswith("memora-embed")  # started before the lookup
    assert cold["results"] == warm["results"] == given["results"]
    assert len(cold["results"]) == 4


def test_a_wrong_guess_of_the_model_is_embedded_again(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A collection made again under its name with another model: the vector started with the old one is dropped."""
    monkeypatch.setattr(query_embedding, "_MODELS", {"kb": ("hashing", "hashing", 8)})
    own = HashingEmbedder(4).embed(["nocturnal aardvark"])[0].tolist()

    guessed = search(api, query="nocturnal aardvark", include=["scores"])
    given = search(api, query="nocturnal aardvark", embedding=own, include=["scores"])

    assert guessed["results"] == given["results"]
    assert query_embedding._MODELS == {"kb": ("hashing", "hashing", 4)}


def test_a_remote_model_is_not_called_before_the_lookup(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query_embedding, "_MODELS", {"kb": ("openai", "text-embedding-3-small", 1536)})

    assert query_embedding.start(settings, "kb", "nocturnal aardvark") is None


def test_hybrid_with_an_embedding_and_no_query_runs_as_vector(api: TestClient) -> None:
    answer = search(api, embedding=QUERY, k=2)

    assert answer["mode"] == "vector"
    assert ids(answer) == ["semantic", "both"]


def test_results_carry_offsets_and_ids(api: TestClient, connection: Connection) -> None:
    result = search(api, query="mammal", mode="text")["results"][0]

    chunk = (
        Query(
            "SELECT c.id, c.document_id FROM memora.chunk c JOIN memora.document d ON d.id = c.document_id "
            "WHERE d.external_id = 'both'"
        )
        .run(connection)
        .one()
    )
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


@pytest.mark.parametrize(
    "body",
    [
        {"query": "aardvarks eating nocturnal mammal", "mode": "text"},
        {"query": "aardvarks eating nocturnal mammal", "mode": "hybrid"},
        {"query": "aardvarks eating nocturnal mammal", "mode": "hybrid", "embedding": QUERY},
        {"query": "aardvarks eating nocturnal mammal", "mode": "vector"},
        {"query": "nocturnal", "mode": "hybrid", "filter": {"source": "pubmed"}, "k": 1},
    ],
)
def test_highlights_in_the_search_statement_are_the_headlines_query(
    api: TestClient, db: Session, body: dict[str, Any]
) -> None:
    """The search's statement gives each hit the highlight the separate headlines statement gave: same text, same
    marks, every hit of every mode (ts_headline also returns unmarked text for a hit without the query's terms)."""
    answer = search(api, **body, include=["highlights"])
    chunk_ids = [result["chunk_id"] for result in answer["results"]]

    apart = repository.headlines(db, "kb", chunk_ids, body["query"])

    assert chunk_ids
    assert [result["highlight"] for result in answer["results"]] == [_highlight(apart[i]) for i in chunk_ids]
    assert all(result["highlight"] for result in answer["results"])
    assert any("<b>" in result["highlight"] for result in answer["results"])


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
