"""What the answer API's tests share: a corpus embedded as the hashing provider embeds questions, the API on the
test's rolled-back transaction with a loopback chat server behind it, and reading its server-sent events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from app.embeddings.hashing import HashingEmbedder
from tests.conftest import app_on
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
    app = app_on(db, settings, engine)
    return app


def chat_settings_for(settings: Settings, server: OpenAIServer) -> Settings:
    """SETTINGS with SERVER as the chat model's server, which checks the API key."""
    server.api_key = KEY
    update = {"openai_base_url": server.base_url, "openai_api_key": SecretStr(KEY), "openai_max_retries": 0,
              "openai_timeout_seconds": 10.0}  # fmt: skip
    return settings.model_copy(update=update)


@contextmanager
def corpus_client(app: FastAPI) -> Iterator[TestClient]:
    """A client of APP whose collection kb holds CORPUS, every document ready."""
    with TestClient(app) as client:
        created = client.post(
            "/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": DIMENSIONS}
        )
        assert created.status_code == 201, created.text
        stored = client.post("/v1/collections/kb/documents", json=documents())
        assert [doc["status"] for doc in stored.json()["documents"]] == ["ready"] * len(CORPUS)
        yield client


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
