"""The API served by uvicorn on a database of its own, with its real request session, and data present: a
collection with ready documents, a queued one, a dataset with examples and a snapshot. The worker is off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.auth import keys
from app.auth.principal import Role
from app.config import Settings
from app.db.engine import make_engine
from app.embeddings.hashing import HashingEmbedder
from tests.conftest import create_database, drop_database
from tests.live_server import serving
from tests.openai_server import OpenAIServer

COLLECTION = "fuzz-docs"
DATASET = "fuzz-data"
SNAPSHOT = "v1"
DIMENSIONS = 8
FUZZ_KEYS = ("fuzz-admin", "fuzz-read")  # the keys of served_with_keys, kept by reset()
PARAGRAPHS = {
    "aardvark": ["The aardvark is a nocturnal burrowing mammal.", "It eats ants and termites at night."],
    "pangolin": ["Pangolins are scaly mammals that roll into a ball."],
}


@dataclass
class Served:
    """Where the API listens, and the names and ids of the rows it was seeded with."""

    base_url: str
    example_ids: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # an admin key's, where keys are required

    def seed(self) -> None:
        """Put back whatever an earlier request deleted: every fuzzed operation starts with data present."""
        with httpx.Client(base_url=self.base_url, timeout=60, headers=self.headers) as client:
            body = {"name": COLLECTION, "embedding_provider": "hashing", "dimensions": DIMENSIONS}
            found = client.get(f"/v1/collections/{COLLECTION}")
            changed = found.status_code == 200 and any(found.json()[key] != value for key, value in body.items())
            if changed:  # by a fuzzed PATCH
                _expect(client.delete(f"/v1/collections/{COLLECTION}"), 204)
            if found.status_code == 404 or changed:
                _expect(client.post("/v1/collections", json=body), 201)
            _expect(client.post(f"/v1/collections/{COLLECTION}/documents", json=_documents()), 202)
            if client.get(f"/v1/datasets/{DATASET}").status_code == 404:
                _expect(client.post("/v1/datasets", json={"name": DATASET, "task": "classification"}), 201)
                examples = [{"text": f"example {i}", "label": "spam" if i % 3 else "ham"} for i in range(12)]
                _expect(client.post(f"/v1/datasets/{DATASET}/examples", json=examples), 201)
            if client.get(f"/v1/datasets/{DATASET}/snapshots/{SNAPSHOT}").status_code == 404:
                _expect(client.post(f"/v1/datasets/{DATASET}/snapshots", json={"name": SNAPSHOT}), 201)
            page = _expect(client.get(f"/v1/datasets/{DATASET}/examples", params={"limit": 100}), 200)
            self.example_ids = [example["id"] for example in page.json()["items"]]

    def reset(self) -> None:
        """Delete every collection and dataset, revoke the keys scenarios made, then seed: each stateful scenario
        meets the same server (Hypothesis takes a scenario whose steps answer differently on a second run for a flaky
        strategy)."""
        with httpx.Client(base_url=self.base_url, timeout=60, headers=self.headers) as client:
            for kind in ("collections", "datasets"):
                for row in _expect(client.get(f"/v1/{kind}"), 200).json():
                    _expect(client.delete(f"/v1/{kind}/{row['name']}"), 204)
            for row in _expect(client.get("/v1/keys"), 200).json():  # keys a scenario made (its name is then free)
                if row["name"] not in FUZZ_KEYS:
                    _expect(client.delete(f"/v1/keys/{row['name']}"), 204)
        self.seed()


def _documents() -> list[dict[str, object]]:
    """Two documents with their chunks embedded (ready at once) and one without (queued for the absent worker)."""
    embedder = HashingEmbedder(DIMENSIONS)
    documents: list[dict[str, object]] = []
    for external_id, paragraphs in PARAGRAPHS.items():
        chunks = [
            {"text": t, "embedding": v.tolist()} for t, v in zip(paragraphs, embedder.embed(paragraphs), strict=True)
        ]
        documents.append({"external_id": external_id, "content": "\n\n".join(paragraphs), "chunks": chunks,
                          "metadata": {"topic": "animals"}})  # fmt: skip
    documents.append({"external_id": "queued", "content": "Waiting for a worker."})
    return documents


def _expect(response: httpx.Response, status: int) -> httpx.Response:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return response


@contextmanager
def _served(server_url: str, template_db: str, **settings: Any) -> Iterator[tuple[str, Settings]]:
    """The API with its own engine and sessions (commit on success, rollback on error) on a database of its own,
    a loopback OpenAI-compatible server behind it for answers and openai collections."""
    url = create_database(server_url, template=template_db)
    with OpenAIServer() as openai_server:
        config = Settings(
            database_url=url, openai_base_url=openai_server.base_url, openai_api_key=SecretStr("sk-fuzz"),
            openai_max_retries=0, openai_timeout_seconds=10.0, console_stream_seconds=0.2, **settings,
        )  # fmt: skip
        with serving(create_app(config)) as base_url:
            yield base_url, config
    drop_database(server_url, url)


@pytest.fixture(scope="module")
def served(server_url: str, template_db: str) -> Iterator[Served]:
    """The API, open (loopback), seeded."""
    with _served(server_url, template_db) as (base_url, _):
        served = Served(base_url)
        served.seed()
        yield served


@dataclass
class Keyed(Served):
    """The API with keys required, seeded with an admin key; READ_KEY is a read key's secret."""

    read_key: str = ""


@pytest.fixture(scope="module")
def served_with_keys(server_url: str, template_db: str) -> Iterator[Keyed]:
    """The API with keys required (MEMORA_AUTH=required), seeded through an admin key, with a read key."""
    with _served(server_url, template_db, auth="required") as (base_url, settings):
        engine = make_engine(settings, "test")
        with Session(engine) as db:
            admin = keys.create(db, settings, FUZZ_KEYS[0], Role.admin).secret
            read = keys.create(db, settings, FUZZ_KEYS[1], Role.read).secret
            db.commit()
        engine.dispose()
        served = Keyed(base_url, headers={"Authorization": f"Bearer {admin}"}, read_key=read)
        served.seed()
        yield served
