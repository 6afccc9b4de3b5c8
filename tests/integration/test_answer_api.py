"""POST /v1/collections/{name}/answer against the loopback OpenAI-compatible server: whole answers, server-sent
events (with the upstream failing mid-stream and the client going away), the score floor, the token budget, errors,
and the API key kept out of responses and logs."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.api.deps import get_session
from app.api.main import create_app
from app.config import Settings
from app.embeddings.hashing import HashingEmbedder
from app.rag import prompt
from app.rag.service import pack
from app.search.schemas import Scores, SearchResult, TextScores, VectorScores
from app.training.formats.tokens import count_text_tokens
from tests.openai_server import OpenAIServer

DEFAULT_CHAT_MODEL = Settings.model_fields["chat_model"].default  # MEMORA_CHAT_MODEL

URL = "/v1/collections/kb/answer"
CHAT = "/v1/chat/completions"
KEY = "sk-loopback-secret-4f1c9a7e"
DIMENSIONS = 256
QUESTION = "What does the aardvark eat?"
OFF_TOPIC = "Mount Everest height in meters?"

# Each document's chunks, as consecutive paragraphs of its content.
CORPUS: dict[str, tuple[str, list[str]]] = {
    "aardvark": (
        "Aardvark",
        ["The aardvark is a nocturnal burrowing mammal of Africa.", "It eats ants and termites, dug out at night."],
    ),
    "pangolin": ("Pangolin", ["Pangolins are scaly mammals that eat ants and roll into a ball when threatened."]),
    "markets": ("Markets", ["Stock markets fell sharply today after a central bank raised interest rates."]),
}


def documents() -> list[dict[str, Any]]:
    """CORPUS as the documents API takes it, each chunk embedded as the hashing provider embeds queries."""
    embedder = HashingEmbedder(DIMENSIONS)
    out = []
    for external_id, (title, paragraphs) in CORPUS.items():
        vectors = embedder.embed(paragraphs)
        chunks = [
            {"text": text, "embedding": vector.tolist()} for text, vector in zip(paragraphs, vectors, strict=True)
        ]
        out.append({"external_id": external_id, "title": title, "content": "\n\n".join(paragraphs), "chunks": chunks})
    return out


def make_app(settings: Settings, engine: Engine, db: Session) -> FastAPI:
    """The API on the test's rolled-back transaction."""
    app = create_app(settings, engine=engine)

    def session() -> Iterator[Session]:
        yield db
        db.flush()

    app.dependency_overrides[get_session] = session
    return app


@pytest.fixture
def chat_settings(settings: Settings, openai_server: OpenAIServer) -> Settings:
    openai_server.api_key = KEY
    update = {"openai_base_url": openai_server.base_url, "openai_api_key": SecretStr(KEY), "openai_max_retries": 0,
              "openai_timeout_seconds": 10.0}  # fmt: skip
    return settings.model_copy(update=update)


@pytest.fixture
def app(chat_settings: Settings, engine: Engine, db: Session) -> FastAPI:
    return make_app(chat_settings, engine, db)


@pytest.fixture
def api(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        created = client.post(
            "/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": DIMENSIONS}
        )
        assert created.status_code == 201, created.text
        stored = client.post("/v1/collections/kb/documents", json=documents())
        assert [doc["status"] for doc in stored.json()["documents"]] == ["ready"] * len(CORPUS)
        yield client


@pytest.fixture
def live(app: FastAPI, api: TestClient) -> Iterator[str]:
    """The same app (and corpus) served by uvicorn on 127.0.0.1, for streams a real client reads and drops."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def ask(api: TestClient, status: int = 200, **body: Any) -> Any:
    response = api.post(URL, json={"question": QUESTION} | body)
    assert response.status_code == status, response.text
    return response.json()


def parse_events(text: str) -> list[tuple[str, Any]]:
    """Server-sent events as (event, data) pairs."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def chat_requests(server: OpenAIServer) -> list[Any]:
    return [request.json() for request in server.requests_to(CHAT)]


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


def test_unknown_model_is_502_with_the_upstreams_message(api: TestClient, openai_server: OpenAIServer) -> None:
    whole = ask(api, 502, model="gpt-nope")
    streamed = api.post(URL, json={"question": QUESTION, "model": "gpt-nope", "stream": True})

    assert whole["error"]["code"] == "chat_provider"
    assert "The model `gpt-nope` does not exist" in whole["error"]["message"]
    assert "HTTP 404" in whole["error"]["message"]
    assert streamed.status_code == 502
    assert streamed.headers["content-type"] == "application/json"
    assert "The model `gpt-nope` does not exist" in streamed.json()["error"]["message"]


def test_upstream_timeout_is_504(
    chat_settings: Settings, engine: Engine, db: Session, api: TestClient, openai_server: OpenAIServer
) -> None:
    impatient = chat_settings.model_copy(update={"openai_timeout_seconds": 0.5, "openai_max_retries": 2})
    openai_server.delay_next(2, seconds=3, path=CHAT)
    with TestClient(make_app(impatient, engine, db)) as client:
        started = time.monotonic()
        whole = client.post(URL, json={"question": QUESTION})
        streamed = client.post(URL, json={"question": QUESTION, "stream": True})
        took = time.monotonic() - started

    assert whole.status_code == 504, whole.text
    assert whole.json()["error"]["code"] == "upstream_timeout"
    assert "no answer within 0.5s" in whole.json()["error"]["message"]
    assert streamed.status_code == 504
    assert len(openai_server.requests_to(CHAT)) == 2  # a timeout is not retried
    assert took < 2.5


def test_a_failed_first_request_is_retried(
    chat_settings: Settings, engine: Engine, db: Session, api: TestClient, openai_server: OpenAIServer
) -> None:
    patient = chat_settings.model_copy(update={"openai_max_retries": 1})
    openai_server.fail_next(status=503, headers={"retry-after-ms": "1"}, path=CHAT)
    with TestClient(make_app(patient, engine, db)) as client:
        response = client.post(URL, json={"question": QUESTION})

    assert response.status_code == 200, response.text
    assert len(openai_server.requests_to(CHAT)) == 2


def test_the_api_key_stays_out_of_responses_and_logs(
    api: TestClient, live: str, openai_server: OpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    openai_server.chat.refuse_next(401, f"Incorrect API key provided: {KEY}.", code="invalid_api_key")
    refused = api.post(URL, json={"question": QUESTION})
    openai_server.chat.fail_mid_stream(after=1, message=f"backend broke while serving {KEY}")
    with httpx.Client(timeout=10) as client:
        streamed = client.post(live + URL, json={"question": QUESTION, "stream": True})

    assert refused.status_code == 502
    assert "Incorrect API key provided: ***." in refused.json()["error"]["message"]
    event, data = parse_events(streamed.text)[-1]
    assert event == "error"
    assert "backend broke while serving ***" in data["error"]["message"]
    for text in (refused.text, streamed.text, caplog.text):
        assert KEY not in text
    assert "answer stream failed" in caplog.text


def test_a_stream_sends_sources_then_deltas_then_usage(live: str, openai_server: OpenAIServer) -> None:
    reply = "Aardvarks eat ants [2] and termites [2], at night [1]."
    openai_server.chat.reply(reply)
    with httpx.Client(timeout=10) as client:
        response = client.post(live + URL, json={"question": QUESTION, "stream": True})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_events(response.text)
    names = [event for event, _ in events]
    assert names == ["sources"] + ["delta"] * (len(names) - 2) + ["done"]
    assert len(names) > 4
    sources = events[0][1]
    assert [s["n"] for s in sources["sources"]] == [1, 2, 3]
    assert sources["model"] == DEFAULT_CHAT_MODEL
    assert "".join(data["text"] for event, data in events if event == "delta") == reply
    done = events[-1][1]
    assert done["answer"] == reply
    assert done["citations"] == [2, 1]
    assert done["finish_reason"] == "stop"
    assert done["usage"]["completion_tokens"] == len(reply.split())
    assert done["usage"]["prompt_tokens"] > 0
    assert done["usage"]["context_tokens"] == sources["context_tokens"]
    (sent,) = chat_requests(openai_server)
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert openai_server.chat.streams[0].outcome == "finished"


@pytest.mark.parametrize(
    ("how", "code"), [("error", "chat_provider"), ("drop", "chat_provider"), ("stall", "upstream_timeout")]
)
def test_an_upstream_failure_mid_stream_ends_with_an_error_event(
    chat_settings: Settings, engine: Engine, db: Session, api: TestClient, openai_server: OpenAIServer,
    how: str, code: str,
) -> None:  # fmt: skip
    impatient = chat_settings.model_copy(update={"openai_timeout_seconds": 1.0})
    openai_server.chat.reply("one two three four five six [1]")
    openai_server.chat.fail_mid_stream(after=2, how=how, seconds=5)  # type: ignore[arg-type]
    with TestClient(make_app(impatient, engine, db)) as client:
        started = time.monotonic()
        response = client.post(URL, json={"question": QUESTION, "stream": True})
        took = time.monotonic() - started

    assert response.status_code == 200
    events = parse_events(response.text)
    assert [event for event, _ in events] == ["sources", "delta", "delta", "error"]
    assert "".join(data["text"] for event, data in events[1:3]) == "one two "
    error = events[-1][1]["error"]
    assert error["code"] == code
    assert "failed mid-answer" in error["message"] or "no answer within 1s" in error["message"]
    assert took < 4  # the stall ended in the timeout, not the upstream's 5 s


def test_a_client_that_goes_away_stops_the_upstream_request(live: str, openai_server: OpenAIServer) -> None:
    openai_server.chat.chunk_delay = 0.05
    openai_server.chat.reply(" ".join(f"word{i}" for i in range(100)))  # 5 s of streaming
    seen = []
    body = {"question": QUESTION, "stream": True}
    with httpx.Client(timeout=10) as client, client.stream("POST", live + URL, json=body) as response:
        for line in response.iter_lines():
            seen.append(line)
            if line.startswith("event: delta"):
                break
    (record,) = openai_server.chat.streams

    assert record.ended.wait(5), "the upstream stream is still being read"
    assert record.outcome == "aborted"
    assert record.sent < record.pieces
    assert seen[0] == "event: sources"


def test_the_endpoint_is_in_the_openapi_schema(api: TestClient) -> None:
    operation = api.get("/openapi.json").json()["paths"]["/v1/collections/{name}/answer"]["post"]

    assert set(operation["responses"]) >= {"200", "404", "422", "502", "504"}
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
