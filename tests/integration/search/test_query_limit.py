"""The length of a search query and of an answer's question (issue 13 case 11: a 10 MB query took 12.3 s and
739 MiB): at most MEMORA_MAX_QUERY_CHARS, else a 422 naming the field and the setting, before any work."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.cli.answer import ask
from app.config import Settings
from app.errors import InvalidInputError
from tests.integration.search.corpus import URL, store_corpus


@pytest.fixture(autouse=True)
def corpus(api: TestClient) -> None:
    store_corpus(api)


def words(chars: int) -> str:
    return ("aardvark " * chars)[:chars]


@pytest.mark.parametrize("mode", ["text", "hybrid"])
def test_a_query_over_the_limit_is_422_naming_query_and_the_setting(
    api: TestClient, settings: Settings, mode: str
) -> None:
    response = api.post(URL, json={"query": words(settings.max_query_chars + 1), "mode": mode})

    assert response.status_code == 422, response.text
    [problem] = response.json()["error"]["details"]
    assert problem["field"] == "body.query"
    assert f"the limit is {settings.max_query_chars} (MEMORA_MAX_QUERY_CHARS)" in problem["reason"]


def test_a_query_at_the_limit_is_searched(api: TestClient, settings: Settings) -> None:
    response = api.post(URL, json={"query": words(settings.max_query_chars), "mode": "text"})

    assert response.status_code == 200, response.text
    assert response.json()["results"]


def test_an_answer_question_over_the_limit_is_422_naming_question(api: TestClient, settings: Settings) -> None:
    question = words(settings.max_query_chars + 1)

    response = api.post("/v1/collections/kb/answer", json={"question": question})

    assert response.status_code == 422, response.text
    assert [p["field"] for p in response.json()["error"]["details"]] == ["body.question"]
    assert "MEMORA_MAX_QUERY_CHARS" in response.json()["error"]["message"]


def test_memora_ask_refuses_a_question_over_the_limit(settings: Settings, engine: Engine) -> None:
    with pytest.raises(InvalidInputError, match=r"QUESTION: .*MEMORA_MAX_QUERY_CHARS"):
        ask(settings, engine, "kb", words(settings.max_query_chars + 1))
