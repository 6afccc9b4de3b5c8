"""POST /v1/collections/{name}/answer when the chat model's server fails, stalls or refuses, and as server-sent
events (the upstream failing mid-stream, the client going away), with the API key kept out of responses and logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from tests.integration.rag.answer_support import (
    CHAT,
    DEFAULT_CHAT_MODEL,
    KEY,
    QUESTION,
    URL,
    ask,
    chat_requests,
    make_app,
    parse_events,
)  # fmt: skip
from tests.live_server import serving
from tests.openai_server import OpenAIServer


@pytest.fixture
def live(app: FastAPI, api: TestClient) -> Iterator[str]:
    """The same app (and corpus) served by uvicorn on 127.0.0.1."""
    with serving(app) as url:
        yield url


def test_a_model_the_server_does_not_have_is_422_naming_the_field(api: TestClient, openai_server: OpenAIServer) -> None:
    """The request's own mistake, not the server's (issue 13: no 5xx from any input): OpenAI's 404 model_not_found
    for a model the request named is a 422 naming body.model, with the server's own words."""
    whole = ask(api, 422, model="gpt-nope")
    streamed = api.post(URL, json={"question": QUESTION, "model": "gpt-nope", "stream": True})

    [problem] = whole["error"]["details"]
    assert problem["field"] == "body.model"
    assert "The model `gpt-nope` does not exist" in problem["reason"]
    assert "HTTP 404" in problem["reason"]
    assert streamed.status_code == 422
    assert streamed.headers["content-type"] == "application/json"
    assert streamed.json()["error"]["details"][0]["field"] == "body.model"


def test_a_configured_model_the_server_does_not_have_is_502(
    chat_settings: Settings, engine: Engine, db: Session, api: TestClient, openai_server: OpenAIServer
) -> None:
    """MEMORA_CHAT_MODEL naming a model the server lacks is the operator's to fix: 502 with the server's words (API
    holds the corpus)."""
    misconfigured = chat_settings.model_copy(update={"chat_model": "gpt-nope"})
    with TestClient(make_app(misconfigured, engine, db)) as client:
        whole = client.post(URL, json={"question": QUESTION})
    assert whole.status_code == 502
    assert whole.json()["error"]["code"] == "chat_provider"
    assert "The model `gpt-nope` does not exist" in whole.json()["error"]["message"]


def test_upstream_timeout_is_504(
    chat_settings: Settings, engine: Engine, db: Session, api: TestClient, openai_server: OpenAIServer
) -> None:
    impatient = chat_settings.model_copy(update={"openai_timeout_seconds": 0.5, "openai_max_retries": 2})
    openai_server.delay_next(2, seconds=120, path=CHAT)  # cut short when the server stops
    with TestClient(make_app(impatient, engine, db)) as client:
        whole = client.post(URL, json={"question": QUESTION})
        streamed = client.post(URL, json={"question": QUESTION, "stream": True})
    upstream_answered = [request.answered.is_set() for request in openai_server.requests_to(CHAT)]

    assert whole.status_code == 504, whole.text
    assert whole.json()["error"]["code"] == "upstream_timeout"
    assert "no answer within 0.5s" in whole.json()["error"]["message"]
    assert streamed.status_code == 504
    assert len(openai_server.requests_to(CHAT)) == 2  # a timeout is not retried
    assert upstream_answered == [False, False]  # both 504s came while the upstream still held its answers


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
    openai_server.chat.fail_mid_stream(after=2, how=how, seconds=120)  # type: ignore[arg-type]
    with TestClient(make_app(impatient, engine, db)) as client:
        response = client.post(URL, json={"question": QUESTION, "stream": True})
    (stream,) = openai_server.chat.streams
    upstream_ended = stream.ended.is_set()

    assert response.status_code == 200
    events = parse_events(response.text)
    assert [event for event, _ in events] == ["sources", "delta", "delta", "error"]
    assert "".join(data["text"] for event, data in events[1:3]) == "one two "
    error = events[-1][1]["error"]
    assert error["code"] == code
    assert "failed mid-answer" in error["message"] or "no answer within 1s" in error["message"]
    assert stream.sent == 2
    if how == "stall":  # it ended in the timeout, while the upstream still stalled (cut short when it stops)
        assert not upstream_ended


def test_a_client_that_goes_away_stops_the_upstream_request(live: str, openai_server: OpenAIServer) -> None:
    openai_server.chat.chunk_delay = 0.2
    openai_server.chat.reply(" ".join(f"word{i}" for i in range(600)))  # 2 minutes of streaming, cut short
    seen = []
    body = {"question": QUESTION, "stream": True}
    with httpx.Client(timeout=10) as client, client.stream("POST", live + URL, json=body) as response:
        for line in response.iter_lines():
            seen.append(line)
            if line.startswith("event: delta"):
                break
    (record,) = openai_server.chat.streams

    assert record.ended.wait(60), "the upstream stream is still being read"  # a safety net: it ends at once
    assert record.outcome == "aborted"
    assert record.sent < record.pieces
    assert seen[0] == "event: sources"
