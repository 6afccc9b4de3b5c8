"""GET /metrics: Prometheus text that parses, counters that move, route templates (never raw paths) as labels, the
queue and leases read from the database at scrape time, pools, and a setting that turns it all off."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.api.main import create_app
from app.config import Settings
from app.db.query import Query
from app.ingest.worker import Worker
from app.observe import collector, metrics
from tests.integration.observe.helpers import scrape, seed, value
from tests.openai_server import OpenAIServer

REQUESTS = "memora_http_requests_total"


def test_requests_are_counted_by_route_template_never_by_raw_path(client: TestClient) -> None:
    route = "/v1/collections/{name}"
    before = scrape(client)

    for _ in range(3):
        assert client.get("/v1/collections/secret-name-1234").status_code == 404
    assert client.get("/no/such/secret-path-5678").status_code == 404
    after = scrape(client)
    text = client.get("/metrics").text

    assert (
        value(after, REQUESTS, method="GET", route=route, status="404")
        - value(before, REQUESTS, method="GET", route=route, status="404")
        == 3
    )
    histogram = "memora_http_request_duration_seconds_count"
    assert (
        value(after, histogram, method="GET", route=route, status="404")
        - value(before, histogram, method="GET", route=route, status="404")
        == 3
    )
    unmatched = value(after, REQUESTS, method="GET", route="unmatched", status="404")
    assert unmatched - value(before, REQUESTS, method="GET", route="unmatched", status="404") == 1
    assert "secret-name-1234" not in text
    assert "secret-path-5678" not in text


def test_a_method_of_the_clients_invention_is_counted_as_other(client: TestClient) -> None:
    before = scrape(client)

    assert client.request("SECRETVERB", "/v1/collections").status_code == 405
    after = scrape(client)

    labels = {"method": "other", "route": "/v1/collections", "status": "405"}
    assert value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 1
    assert "SECRETVERB" not in client.get("/metrics").text


def test_the_queue_and_leases_are_read_from_the_database(client: TestClient, committed: Engine) -> None:
    counts = seed(committed)

    samples = scrape(client)
    text = client.get("/metrics").text

    assert value(samples, "memora_database_up") == 1
    assert value(samples, "memora_database_read_seconds") > 0
    for status in ("pending", "processing", "ready", "failed"):
        assert value(samples, "memora_documents", status=status) == counts.get(status, 0), status
    assert value(samples, "memora_leases", state="held") == 1
    assert value(samples, "memora_leases", state="expired") == 1
    assert value(samples, "memora_queue_oldest_pending_seconds") >= 0
    assert "secret-alpha" not in text  # collection names are data
    assert "host:1:aaaaaa" not in text  # so are worker names


def test_the_pool_of_the_api_is_reported(client: TestClient) -> None:
    client.get("/healthz")  # opens a connection
    samples = scrape(client)

    assert value(samples, "memora_db_pool_size", pool="api") == Settings().pool_size
    assert value(samples, "memora_db_pool_checked_out", pool="api") == 0
    assert value(samples, "memora_db_pool_idle", pool="api") >= 1


def test_metrics_can_be_turned_off(fresh_db_url: str) -> None:
    with TestClient(create_app(Settings(database_url=fresh_db_url, metrics=False))) as client:
        response = client.get("/metrics")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "MEMORA_METRICS" in response.json()["error"]["message"]


def test_metrics_answer_when_the_database_does_not() -> None:
    with TestClient(create_app(Settings(database_url="postgresql://nobody@127.0.0.1:9/nothing"))) as client:
        samples = scrape(client)

    assert value(samples, "memora_database_up") == 0
    assert not [name for name, _ in samples if name == "memora_documents"]
    assert value(samples, "memora_db_pool_size", pool="api") == Settings().pool_size


def test_a_read_the_database_cannot_finish_in_time_is_given_up(
    client: TestClient, committed: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector, "STATEMENT_TIMEOUT_MS", 300)
    with committed.begin() as conn:
        Query("LOCK TABLE memora.document IN ACCESS EXCLUSIVE MODE").run(conn)  # the scrape's read must wait
        samples = scrape(client)

    assert value(samples, "memora_database_up") == 0
    assert not [name for name, _ in samples if name == "memora_documents"]


def test_the_worker_counts_chunks_embedded_and_documents_ready(fresh_db_url: str, committed: Engine) -> None:
    with committed.begin() as conn:
        Query(
            "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions) "
            "VALUES ('docs', 'hashing', 'hashing', 16);"
            "INSERT INTO memora.document (collection_id, external_id, content) "
            "SELECT id, 'd' || n, 'Text number ' || n || '. Another sentence.' FROM memora.collection, "
            "generate_series(1, 3) n"
        ).run(conn)
    chunks, ready = metrics.CHUNKS_EMBEDDED._value.get(), metrics.DOCUMENTS_READY._value.get()

    stats = Worker(Settings(database_url=fresh_db_url), committed).run(threading.Event(), until_empty=True)

    assert stats.documents == 3
    assert stats.texts_embedded >= 3
    assert metrics.CHUNKS_EMBEDDED._value.get() - chunks == stats.texts_embedded
    assert metrics.DOCUMENTS_READY._value.get() - ready == 3


def test_provider_errors_and_retries_are_counted_by_kind(openai_server: OpenAIServer) -> None:
    from app.embeddings.openai_provider import OpenAIEmbedder

    def counts() -> tuple[float, ...]:
        return (
            metrics.PROVIDER_ERRORS.labels("openai", "http_429")._value.get(),
            metrics.PROVIDER_RETRIES.labels("openai", "http_429")._value.get(),
            metrics.PROVIDER_ERRORS.labels("openai", "http_4xx")._value.get(),
            metrics.PROVIDER_RETRIES.labels("openai", "http_4xx")._value.get(),
        )

    embedder = OpenAIEmbedder(
        "text-embedding-3-small", 16, base_url=openai_server.base_url, api_key="sk-test", max_retries=2
    )
    before = counts()
    openai_server.fail_next(2, 429, headers={"Retry-After": "0"})
    embedder.embed(["retried twice, then embedded"])
    openai_server.fail_next(1, 401)
    with pytest.raises(Exception, match="HTTP 401"):
        embedder.embed(["never embedded"])

    assert tuple(a - b for a, b in zip(counts(), before, strict=True)) == (2, 2, 1, 0)


def test_the_worker_inside_serve_counts_into_the_apis_metrics(fresh_db_url: str) -> None:
    settings = Settings(database_url=fresh_db_url, worker_poll_seconds=0.2)
    body = {"name": "docs", "embedding_provider": "hashing", "dimensions": 16}
    with TestClient(create_app(settings, worker=True)) as client:
        before = scrape(client)
        assert client.post("/v1/collections", json=body).status_code == 201
        client.post("/v1/collections/docs/documents", json={"external_id": "a", "content": "Served and embedded."})
        deadline = time.monotonic() + 60  # a safety net: the loop ends when the document is ready
        while client.get("/v1/collections/docs/documents/a").json()["status"] != "ready":
            assert time.monotonic() < deadline, "the worker did not process the document"
            time.sleep(0.05)
        after = scrape(client)

    assert value(after, "memora_documents_ready_total") - value(before, "memora_documents_ready_total") == 1
    assert value(after, "memora_chunks_embedded_total") - value(before, "memora_chunks_embedded_total") == 1
    assert value(after, "memora_db_pool_size", pool="worker") == settings.pool_size
    assert value(after, "memora_documents", status="ready") == 1
