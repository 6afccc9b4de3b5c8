"""The answer API's tests share one app: the chat model on the loopback OpenAI-compatible server, the corpus of
answer_support.py stored, requests in the test's rolled-back transaction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from tests.integration.rag.answer_support import chat_settings_for, corpus_client, make_app
from tests.openai_server import OpenAIServer


@pytest.fixture
def chat_settings(settings: Settings, openai_server: OpenAIServer) -> Settings:
    return chat_settings_for(settings, openai_server)


@pytest.fixture
def app(chat_settings: Settings, engine: Engine, db: Session) -> FastAPI:
    return make_app(chat_settings, engine, db)


@pytest.fixture
def api(app: FastAPI) -> Iterator[TestClient]:
    with corpus_client(app) as client:
        yield client
