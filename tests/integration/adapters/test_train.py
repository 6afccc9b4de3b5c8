"""Query adapters end to end against a real database (app/adapters/): judged queries whose words are a code for the
documents' words, which no base model can match and a linear map of the query learns; the adapter evaluated on both
held-out splits, kept as a version, filled by the worker with the base's vectors, and searched through SQL and REST."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.adapters import service
from app.adapters.jobs import Trainer
from app.adapters.train import Options
from app.api.main import create_app
from app.config import Settings
from app.db.engine import make_engine
from app.db.query import Query
from app.eval.service import JudgedQuery
from app.ingest.worker import Worker

CONCEPTS = 40
DOCUMENTS = 120
ADD = Query(
    "INSERT INTO memora.document (collection_id, external_id, content) "
    "SELECT id, %(external_id)s, %(content)s FROM memora.collection WHERE name = 'codes'"
)
SEARCH = Query("SELECT external_id FROM memora.search_vector_v2('codes', %(embedding)s, 1, version => %(version)s)")
VECTORS = Query("SELECT version, count(*) FROM memora.embedding GROUP BY version ORDER BY version")


def corpus(seed: int = 7) -> tuple[list[tuple[str, str]], list[JudgedQuery]]:
    """Documents of three concepts written a1 .. a40, and for each a query of two of them written q1 .. q40."""
    rng = random.Random(seed)
    documents, queries = [], []
    for i in range(DOCUMENTS):
        concepts = rng.sample(range(1, CONCEPTS + 1), 3)
        documents.append((f"doc-{i}", " ".join(f"a{c}" for c in concepts)))
        asked = rng.sample(concepts, 2)
        queries.append(JudgedQuery(f"query-{i}", " ".join(f"q{c}" for c in asked), {f"doc-{i}": 1}))
    return documents, queries


@pytest.fixture
def settings(fresh_db_url: str) -> Settings:
    return Settings(database_url=fresh_db_url, worker_poll_seconds=30, openai_api_key=None)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings, "adapter-test")
    documents, _ = corpus()
    with TestClient(create_app(settings)) as api:
        body = {"name": "codes", "embedding_provider": "hashing", "dimensions": 256}
        created = api.post("/v1/collections", json=body)
        assert created.status_code == 201, created.text
    with engine.begin() as conn:
        for external_id, content in documents:
            ADD.run(conn, {"external_id": external_id, "content": content})
    drain(settings, engine)
    yield engine
    engine.dispose()


def drain(settings: Settings, engine: Engine) -> None:
    Worker(settings, engine).run(threading.Event(), until_empty=True)


def test_an_adapter_learns_the_code_and_gains_on_both_held_out_splits(settings: Settings, engine: Engine) -> None:
    _, queries = corpus()

    weights, report = service.train_adapter(engine, settings, "codes", queries,
                                            options=Options(epochs=40, learning_rate=1e-2))  # fmt: skip

    assert weights.shape == (256, 256)
    assert (report["base"], report["queries"], report["pairs"]) == (1, DOCUMENTS, DOCUMENTS)
    for name in ("query", "document"):
        split = report["splits"][name]
        assert split["held_out"] == 24
        vector = split["results"]["vector"]["ndcg@10"]
        # Query words never appear in documents: the base finds almost nothing; the map finds most.
        assert vector["base"]["mean"] < 0.15
        assert vector["delta"]["low"] > 0.2, (name, vector, split["training"])
        assert split["results"]["hybrid"]["ndcg@10"]["delta"]["low"] > 0.2
    assert report["final"]["epochs"] >= 1
    assert report["peak_memory_mb"] > 0


def test_an_adapter_version_is_filled_with_the_base_s_vectors_and_searches_through_its_map(
    settings: Settings, engine: Engine
) -> None:
    _, queries = corpus()
    weights, report = service.train_adapter(engine, settings, "codes", queries,
                                            options=Options(epochs=40, learning_rate=1e-2))  # fmt: skip
    with Session(engine) as db, db.begin():
        number = service.save(db, "codes", weights, report).number
    drain(settings, engine)

    with TestClient(create_app(settings)) as api:
        version = api.get(f"/v1/collections/codes/embeddings/{number}").json()
        pinned = [api.post("/v1/collections/codes/search", json={"query": q.text, "mode": "vector", "k": 1,
                                                                   "version": number}).json()
                  for q in queries[:40]]  # fmt: skip
        base = [api.post("/v1/collections/codes/search", json={"query": q.text, "mode": "vector", "k": 1}).json()
                for q in queries[:40]]  # fmt: skip
    with engine.connect() as conn:
        counts = dict(tuple(row) for row in VECTORS.run(conn))

    assert number == 2
    assert (version["status"], version["vectors"], version["adapter"]["base"]) == ("ready", DOCUMENTS, 1)
    assert counts == {1: DOCUMENTS, 2: DOCUMENTS}  # copied, not embedded again
    hits = sum(r["results"][0]["external_id"] == q.judgments.popitem()[0] for r, q in zip(pinned, queries, strict=False)
               if r["results"])  # fmt: skip
    base_hits = sum(bool(r["results"]) and r["results"][0]["external_id"] == f"doc-{i}" for i, r in enumerate(base))
    assert {r["embedding_version"] for r in pinned} == {number}
    assert hits > 2 * max(base_hits, 5)


def test_training_through_the_api_runs_in_the_worker_and_bad_requests_are_422(
    settings: Settings, engine: Engine
) -> None:
    _, queries = corpus()
    records = [{"query": q.text, "positive": "a passage", "source": {"collection": "codes",
                                                                      "external_id": next(iter(q.judgments))}}
               for q in queries]  # fmt: skip
    with TestClient(create_app(settings)) as api:
        assert api.post("/v1/datasets", json={"name": "judged", "task": "pairs"}).status_code == 201
        assert api.post("/v1/datasets/judged/examples", json=records).status_code == 201
        assert api.post("/v1/datasets", json={"name": "few", "task": "pairs"}).status_code == 201
        assert api.post("/v1/datasets/few/examples", json=records[:10]).status_code == 201
        assert api.post("/v1/datasets", json={"name": "elsewhere", "task": "pairs"}).status_code == 201
        strangers = [{**record, "metadata": {"relevant": ["not-here"]}} for record in records]
        assert api.post("/v1/datasets/elsewhere/examples", json=strangers).status_code == 201
        few = api.post("/v1/collections/codes/embeddings/train", json={"pairs": "few"})
        unknown = api.post("/v1/collections/codes/embeddings/train", json={"pairs": "elsewhere"})
        missing = api.post("/v1/collections/codes/embeddings/train", json={"pairs": "nowhere"})
        bad_base = api.post("/v1/collections/codes/embeddings/train", json={"pairs": "judged", "base": 5})
        accepted = api.post("/v1/collections/codes/embeddings/train", json={"pairs": "judged", "seed": 3})
        searched = api.post("/v1/collections/codes/search", json={"query": "q1", "mode": "vector", "version": 2})

        trained = Trainer(settings, engine, "test-worker").run_once()
        after = api.get("/v1/collections/codes/embeddings/2").json()

    for refused, field in ((few, "pairs"), (unknown, "pairs"), (missing, "pairs"), (bad_base, "base")):
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"][0]["field"] == field
    assert "at least 50" in few.json()["error"]["message"]
    assert "1 judged document(s) are not in the collection: 'not-here'" in unknown.json()["error"]["message"]
    assert accepted.status_code == 202, accepted.text
    assert (accepted.json()["number"], accepted.json()["status"]) == (2, "training")
    assert searched.status_code == 422  # no map yet: refused rather than searched unadapted
    assert "still training" in searched.json()["error"]["message"]
    assert trained
    assert after["status"] == "building", after
    assert after["adapter"]["request"] == {"pairs": "judged", "seed": 3}
    assert after["adapter"]["splits"]["document"]["results"]["vector"]["ndcg@10"]["delta"]["mean"] > 0
    assert np.isfinite(after["adapter"]["final"]["losses"]).all()
