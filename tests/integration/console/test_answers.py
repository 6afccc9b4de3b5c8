"""Answers in the console over HTTP, against the loopback chat server: the streamed events a script reads, the
whole answer a plain form gets (citations linked to their sources), and problems at their field."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from tests.integration.rag.answer_support import QUESTION, chat_settings_for, corpus_client, make_app, parse_events
from tests.openai_server import OpenAIServer

HTML = {"Accept": "text/html"}
URL = "/console/collections/kb/answer"


@pytest.fixture
def api(settings: Settings, openai_server: OpenAIServer, engine: Engine, db: Session) -> Iterator[TestClient]:
    with corpus_client(make_app(chat_settings_for(settings, openai_server), engine, db)) as client:
        yield client


def csrf(api: TestClient) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', api.get(URL, headers=HTML).text)
    assert found is not None
    return found.group(1)


def test_the_form_is_labelled_and_has_no_answer_yet(api: TestClient) -> None:
    response = api.get(URL, headers=HTML)

    assert response.status_code == 200
    assert '<label for="question">Question</label>' in response.text
    assert '<section aria-labelledby="answer-title" id="answer" hidden>' in response.text


def test_a_script_reads_the_answer_as_the_api_streams_it(api: TestClient, openai_server: OpenAIServer) -> None:
    openai_server.chat.reply("Ants and termites [2], at night [1].")

    response = api.post(
        URL,
        data={"question": QUESTION, "mode": "text"},
        headers={"X-CSRF-Token": csrf(api), "Accept": "text/event-stream"},
    )

    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_events(response.text)
    names = [name for name, _ in events]
    assert (names[0], names[-1]) == ("sources", "done")
    assert "".join(data["text"] for name, data in events if name == "delta") == "Ants and termites [2], at night [1]."
    assert events[-1][1]["citations"] == [2, 1]


def test_a_plain_form_gets_the_whole_answer_with_citations_linked(api: TestClient, openai_server: OpenAIServer) -> None:
    openai_server.chat.reply("It eats <ants> [1]; see also [9].")

    response = api.post(URL, data={"question": QUESTION, "mode": "text", "csrf_token": csrf(api)}, headers=HTML)

    assert response.status_code == 200
    assert 'It eats &lt;ants&gt; <a href="#source-1">[1]</a>; see also [9].' in response.text  # [9] is no source
    assert re.search(
        r'<li id="source-1" value="1"><a href="[^"]*\?id=aardvark&amp;at=1#chunk-1">Aardvark</a>', response.text
    )


def test_a_bad_field_is_shown_at_the_field_or_told_to_the_script(api: TestClient) -> None:
    token = csrf(api)

    page = api.post(URL, data={"question": QUESTION, "k": "0", "csrf_token": token}, headers=HTML)
    script = api.post(URL, data={"question": QUESTION, "k": "0"}, headers={"X-CSRF-Token": token,
                                                                          "Accept": "text/event-stream"})  # fmt: skip

    assert page.status_code == script.status_code == 422
    assert '<p class="problem" id="problem-k">Input should be greater than or equal to 1</p>' in page.text
    assert script.json()["error"]["details"][0]["field"] == "k"


def test_without_a_chat_model_the_page_says_what_to_set(
    settings: Settings, engine: Engine, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with corpus_client(make_app(settings.model_copy(update={"openai_api_key": None}), engine, db)) as client:
        response = client.get(URL, headers=HTML)

    assert "Answers need a chat model on an OpenAI-compatible server: set <code>MEMORA_OPENAI_API_KEY</code>" in (
        response.text
    )
