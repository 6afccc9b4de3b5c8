"""Reranking through an OpenAI-compatible /v1/rerank served on loopback (the route is registered here)."""

from __future__ import annotations

import re
from contextlib import closing
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from app.config import Settings
from app.errors import InvalidInputError, UpstreamTimeoutError
from app.rerank.llm import OpenAICompatibleReranker, RerankProviderError
from app.rerank.schemas import RerankOptions
from app.rerank.service import candidates_for, get_reranker, rerank
from tests.openai_server import OpenAIServer, Request, Response, error

KEY = "sk-rerank-test-key"
RERANK = "/v1/rerank"
MODEL = "ms-marco-MiniLM-L-6-v2"


def overlap_scores(request: Request) -> Response:
    """Cohere/Jina-style reply: each document scored by how many query words it holds, best first."""
    body = request.json()
    if body.get("model") != MODEL:
        return error(404, f"The model `{body.get('model')}` does not exist.", "invalid_request_error")
    words = set(re.findall(r"\w+", body["query"].lower()))
    scored = [
        {"index": i, "relevance_score": float(len(words & set(re.findall(r"\w+", doc.lower()))))}
        for i, doc in enumerate(body["documents"])
    ]
    scored.sort(key=lambda item: -item["relevance_score"])
    return Response(body={"id": "rerank-1", "model": MODEL, "results": scored[: body.get("top_n") or None]})


@pytest.fixture
def server(openai_server: OpenAIServer) -> OpenAIServer:
    openai_server.api_key = KEY
    openai_server.route("POST", RERANK, overlap_scores)
    return openai_server


def settings_for(server: OpenAIServer, **update: Any) -> Settings:
    fields: dict[str, Any] = {"openai_base_url": server.base_url, "openai_api_key": SecretStr(KEY)}
    return Settings(**{"openai_max_retries": 0, **fields, **update})


HITS = [
    {"id": "a", "text": "Pangolins are scaly mammals."},
    {"id": "b", "text": "Aardvarks eat ants and termites at night."},
    {"id": "c", "text": "Termites build mounds."},
    {"id": "d", "text": "Aardvarks eat termites."},
]


def test_rerank_orders_the_first_top_n_by_the_server_and_keeps_former_ranks(server: OpenAIServer) -> None:
    options = RerankOptions(model=MODEL, top_n=3)
    with closing(get_reranker(options, settings_for(server))) as reranker:
        outcome = rerank(reranker, "what do aardvarks eat", HITS, options.top_n, lambda hit: hit["text"])

    assert [(r.hit["id"], r.rank, r.original_rank) for r in outcome.hits] == [
        ("b", 1, 2),
        ("a", 2, 1),  # 0 overlap, tied with c: the former order decides
        ("c", 3, 3),
        ("d", 4, 4),  # past top_n: not sent, not scored, left in place
    ]
    assert [r.score for r in outcome.hits] == [2.0, 0.0, 0.0, None]
    assert outcome.took_ms > 0
    (sent,) = server.requests_to(RERANK)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json() == {
        "model": MODEL,
        "query": "what do aardvarks eat",
        "documents": [hit["text"] for hit in HITS[:3]],
        "top_n": 3,
    }


def test_no_hits_make_no_request(server: OpenAIServer) -> None:
    with OpenAICompatibleReranker(settings_for(server), MODEL) as reranker:
        assert rerank(reranker, "anything", [], 50, str).hits == []
    assert server.requests_to(RERANK) == []


def test_a_refusal_names_the_model_and_server_and_quotes_it(server: OpenAIServer) -> None:
    with (
        OpenAICompatibleReranker(settings_for(server), "no-such-reranker") as reranker,
        pytest.raises(RerankProviderError) as caught,
    ):
        reranker.score("q", ["d"])
    assert caught.value.status == 502
    assert caught.value.message == (
        f"rerank model no-such-reranker at {server.base_url}: HTTP 404: The model `no-such-reranker` does not exist."
    )


def test_a_server_error_is_retried(server: OpenAIServer) -> None:
    server.fail_next(1, 503, headers={"retry-after-ms": "50"}, path=RERANK)
    with OpenAICompatibleReranker(settings_for(server, openai_max_retries=2), MODEL) as reranker:
        assert reranker.score("aardvarks", ["aardvarks", "pangolins"]) == [1.0, 0.0]
    first, second = server.requests_to(RERANK)
    assert second.received_at - first.received_at >= 0.05  # as Retry-After asked


def test_a_timeout_is_a_504_and_not_retried(server: OpenAIServer) -> None:
    server.delay_next(1, 2.0, path=RERANK)
    settings = settings_for(server, openai_timeout_seconds=0.3, openai_max_retries=3)
    with OpenAICompatibleReranker(settings, MODEL) as reranker, pytest.raises(UpstreamTimeoutError) as caught:
        reranker.score("q", ["d"])
    assert caught.value.status == 504
    assert "no answer within 0.3s" in caught.value.message
    assert len(server.requests_to(RERANK)) == 1


@pytest.mark.parametrize(
    ("results", "reason"),
    [
        ([{"index": 0, "relevance_score": 1.0}], "scores 1 of 2 documents (first missing: 1)"),
        ([{"index": 0, "relevance_score": 1}, {"index": 0, "relevance_score": 2}], "repeated or unknown index"),
        ([{"index": 0, "relevance_score": 1}, {"index": 7, "relevance_score": 2}], "repeated or unknown index"),
        ([{"index": 0, "relevance_score": "high"}, {"index": 1, "relevance_score": 2}], "no finite relevance_score"),
        (None, "no list of results"),
    ],
)
def test_a_reply_that_does_not_score_every_document_is_an_error(
    server: OpenAIServer, results: Any, reason: str
) -> None:
    server.route("POST", RERANK, lambda request: Response(body={"results": results}))
    with OpenAICompatibleReranker(settings_for(server), MODEL) as reranker, pytest.raises(RerankProviderError) as e:
        reranker.score("q", ["one", "two"])
    assert reason in e.value.message


def test_the_api_key_never_reaches_a_message(server: OpenAIServer) -> None:
    server.route("POST", RERANK, lambda request: error(400, f"bad key {KEY} for this model"))
    with OpenAICompatibleReranker(settings_for(server), MODEL) as reranker, pytest.raises(RerankProviderError) as e:
        reranker.score("q", ["d"])
    assert KEY not in e.value.message
    assert "bad key *** for this model" in e.value.message


def test_the_local_provider_is_refused_with_the_field_named(server: OpenAIServer) -> None:
    with pytest.raises(InvalidInputError) as caught:
        get_reranker(RerankOptions(provider="local", model=MODEL), settings_for(server))
    assert caught.value.details == [{"field": "body.rerank.provider", "reason": caught.value.details[0]["reason"]}]
    assert "no local cross-encoder is installed" in caught.value.message


def test_options_are_bounded_and_search_fetches_enough() -> None:
    with pytest.raises(ValidationError):
        RerankOptions(model=MODEL, top_n=201)
    with pytest.raises(ValidationError):
        RerankOptions(model=MODEL, top_n=10, extra=1)  # type: ignore[call-arg]
    assert candidates_for(10, None) == 10
    assert candidates_for(10, RerankOptions(model=MODEL)) == 50
    assert candidates_for(80, RerankOptions(model=MODEL, top_n=20)) == 80
