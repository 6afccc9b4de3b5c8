"""POST /v1/collections/{name}/answer against the loopback OpenAI-compatible server: whole answers, citations, the
score floor, the token budget and bad input. Failures of the chat server and streams: test_answer_upstream.py."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.rag import prompt
from app.rag.service import pack
from app.search.schemas import Scores, SearchResult, TextScores, VectorScores
from app.training.formats.tokens import count_text_tokens
from tests.integration.rag.answer_support import (
    CHAT,
    CORPUS,
    DEFAULT_CHAT_MODEL,
    KEY,
    OFF_TOPIC,
    QUESTION,
    URL,
    ask,
    chat_requests,
    parse_events,
)  # fmt: skip
from tests.openai_server import OpenAIServer


def test_the_answer_cites_numbered_sources(api: TestClient, openai_server: OpenAIServer) -> None:
    openai_server.chat.reply("Aardvarks eat ants and termites [2], like pangolins [3].")

    body = ask(api)

    assert body["answer"] == "Aardvarks eat ants and termites [2], like pangolins [3]."
    assert body["reason"] is None
    assert body["citations"] == [2, 3]
    assert body["model"] == DEFAULT_CHAT_MODEL
    assert body["finish_reason"] == "stop"
    # Every chunk that says aardvark or eat is a source, in fused order; markets shares neither word nor meaning.
    sources = body["sources"]
    assert [s["n"] for s in sources] == [1, 2, 3]
    assert {s["external_id"] for s in sources} == {"aardvark", "pangolin"}
    assert [s["cited"] for s in sources] == [False, True, True]
    assert body["retrieved"] == 4
    assert body["min_score"] == 0.25
    for source in sources:
        title, paragraphs = CORPUS[source["external_id"]]
        content = "\n\n".join(paragraphs)
        assert content[source["char_start"] : source["char_end"]] == source["text"]
        assert source["tokens"] == count_text_tokens(prompt.source_block(source["n"], title, source["text"]))
        assert isinstance(source["chunk_id"], int)
    assert body["usage"]["context_tokens"] == sum(s["tokens"] for s in sources) + len(sources) - 1
    (sent,) = chat_requests(openai_server)
    words = sum(len(m["content"].split()) for m in sent["messages"])
    assert body["usage"] == {"prompt_tokens": words, "completion_tokens": 9, "total_tokens": words + 9,
                             "context_tokens": body["usage"]["context_tokens"]}  # fmt: skip
    assert sent["model"] == DEFAULT_CHAT_MODEL
    assert "temperature" not in sent
    assert "stream" not in sent or sent["stream"] is False
    system, user = sent["messages"]
    assert system == {"role": "system", "content": prompt.SYSTEM_PROMPT}
    blocks = [prompt.source_block(s["n"], s["title"], s["text"]) for s in sources]
    assert user == {"role": "user", "content": "Sources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {QUESTION}"}
    assert openai_server.requests_to(CHAT)[0].headers["authorization"] == f"Bearer {KEY}"


def test_citations_ignore_numbers_that_name_no_source(api: TestClient, openai_server: OpenAIServer) -> None:
    openai_server.chat.reply("Termites [2, 1], see also [9] and [0]; again [2].")

    body = ask(api)

    assert body["citations"] == [2, 1]
    assert [s["cited"] for s in body["sources"]] == [True, True, False]


def test_request_fields_reach_the_model(api: TestClient, openai_server: OpenAIServer) -> None:
    body = ask(api, model="gpt-4o", temperature=0.3, system_prompt="Answer in French, citing [n].", k=1,
               mode="text", filter={"document.external_id": "pangolin"})  # fmt: skip

    (sent,) = chat_requests(openai_server)
    assert (sent["model"], sent["temperature"]) == ("gpt-4o", 0.3)
    assert sent["messages"][0] == {"role": "system", "content": "Answer in French, citing [n]."}
    assert [s["external_id"] for s in body["sources"]] == ["pangolin"]
    assert body["answer"] == "The sources answer this [1]."
    assert body["citations"] == [1]
    assert body["model"] == "gpt-4o"


def test_the_budget_packs_the_best_sources_that_fit(api: TestClient, openai_server: OpenAIServer) -> None:
    everything = ask(api, min_score=None)
    first = everything["sources"][0]["tokens"]

    only_first = ask(api, max_context_tokens=first)

    assert len(everything["sources"]) == 4
    assert [s["chunk_id"] for s in only_first["sources"]] == [everything["sources"][0]["chunk_id"]]
    assert only_first["usage"]["context_tokens"] == first
    user = chat_requests(openai_server)[-1]["messages"][1]["content"]
    assert "[2]" not in user


def test_pack_skips_a_source_that_does_not_fit_and_numbers_the_rest() -> None:
    def result(chunk_id: int, text: str) -> SearchResult:
        return SearchResult(
            chunk_id=chunk_id, document_id=1, external_id="doc", ordinal=chunk_id, char_start=0, char_end=len(text),
            title="Doc", score=1.0 / chunk_id, text=text,
            scores=Scores(text=TextScores(rank=chunk_id, score=1.0),
                          vector=VectorScores(rank=1, score=0.5, distance=0.5)),
        )  # fmt: skip

    results = [result(1, "Short first."), result(2, "long " * 500), result(3, "Short third.")]
    small = [count_text_tokens(prompt.source_block(n, "Doc", text)) for n, text in ((1, "Short first."),
                                                                                     (2, "Short third."))]  # fmt: skip

    sources, blocks, used = pack(results, DEFAULT_CHAT_MODEL, sum(small) + 1)

    assert [(s.n, s.chunk_id) for s in sources] == [(1, 1), (2, 3)]
    assert blocks == ["[1] Doc\nShort first.", "[2] Doc\nShort third."]
    assert used == sum(small) + 1
    assert sources[0].similarity == 0.5


def test_a_budget_smaller_than_the_best_source_is_422(api: TestClient, openai_server: OpenAIServer) -> None:
    body = ask(api, 422, max_context_tokens=3)

    assert body["error"]["details"][0]["field"] == "body.max_context_tokens"
    assert "more than the budget of 3" in body["error"]["message"]
    assert chat_requests(openai_server) == []


def test_nothing_relevant_says_so_without_asking_the_model(api: TestClient, openai_server: OpenAIServer) -> None:
    body = ask(api, question=OFF_TOPIC)
    streamed = api.post(URL, json={"question": OFF_TOPIC, "stream": True})
    strict = ask(api, mode="vector", min_score=0.99)

    assert body["answer"] is None
    assert body["reason"] == "no_relevant_sources"
    assert (body["sources"], body["citations"], body["retrieved"]) == ([], [], 4)
    assert body["usage"] == {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None,
                             "context_tokens": 0}  # fmt: skip
    assert streamed.status_code == 200
    assert [event for event, _ in parse_events(streamed.text)] == ["sources", "done"]
    done = parse_events(streamed.text)[1][1]
    assert (done["answer"], done["reason"]) == (None, "no_relevant_sources")
    assert strict["reason"] == "no_relevant_sources"
    assert chat_requests(openai_server) == []


def test_without_a_floor_every_retrieved_chunk_is_a_source(api: TestClient, openai_server: OpenAIServer) -> None:
    body = ask(api, question=OFF_TOPIC, min_score=None)

    assert body["min_score"] is None
    assert len(body["sources"]) == 4
    assert body["answer"] == "The sources answer this [1][2][3][4]."
    assert len(chat_requests(openai_server)) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": ""}, "body.question"),
        ({"question": "   "}, "body.question"),
        ({"question": "nul \u0000"}, "body.question"),
        ({"question": "x" * 8001}, "body.question"),
        ({"k": 0}, "body.k"),
        ({"k": 101}, "body.k"),
        ({"max_context_tokens": 0}, "body.max_context_tokens"),
        ({"temperature": 3}, "body.temperature"),
        ({"mode": "fuzzy"}, "body.mode"),
        ({"system_prompt": " "}, "body.system_prompt"),
        ({"filter": {"year": {"$regex": "x"}}}, "body.filter"),
        ({"extra": 1}, "body.extra"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    api: TestClient, openai_server: OpenAIServer, body: dict[str, Any], field: str
) -> None:
    response = api.post(URL, json={"question": QUESTION} | body)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"].startswith(field)
    assert chat_requests(openai_server) == []


def test_a_question_of_stop_words_finds_nothing_by_text(api: TestClient, openai_server: OpenAIServer) -> None:
    body = ask(api, question="the of and", mode="text")

    assert (body["reason"], body["retrieved"]) == ("no_relevant_sources", 0)
    assert chat_requests(openai_server) == []


def test_nan_in_the_filter_is_422(api: TestClient) -> None:
    raw = b'{"question": "aardvark", "filter": {"year": NaN}}'
    response = api.post(URL, content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "body.filter"


def test_unknown_collection_is_404(api: TestClient) -> None:
    response = api.post("/v1/collections/nope/answer", json={"question": QUESTION})

    assert response.status_code == 404


def test_the_endpoint_is_in_the_openapi_schema(api: TestClient) -> None:
    operation = api.get("/openapi.json").json()["paths"]["/v1/collections/{name}/answer"]["post"]

    assert set(operation["responses"]) >= {"200", "404", "422", "502", "504"}
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
