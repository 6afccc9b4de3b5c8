"""Reading /metrics as Prometheus would, and putting documents in each state of the queue with SQL."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from app.db.query import Query

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> Samples:
    """Every sample of GET /metrics by (name, sorted labels); fails if the text does not parse."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample NAME with LABELS, 0 if there is none yet (a counter not yet incremented)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# Two collections, documents in every status: leases held (running) and expired (a dead worker's), errors.
SEED = Query("""
    INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions)
    VALUES ('secret-alpha', 'hashing', 'hashing', 16), ('secret-beta', 'hashing', 'hashing', 16);
    INSERT INTO memora.document (collection_id, external_id, content, status, error, attempts, available_at,
                                 leased_by, request_id)
    SELECT c.id, c.name || '-' || d.n, 'text ' || d.n, d.status, d.error, d.attempts, now() + d.lease, d.worker,
           d.request_id
    FROM memora.collection c,
    (VALUES (1, 'pending', NULL, 0, interval '0', NULL, NULL),
            (2, 'pending', 'HTTP 500: try again', 1, interval '1 minute', NULL, 'req-retry'),
            (3, 'processing', NULL, 1, interval '5 minutes', 'host:1:aaaaaa', NULL),
            (4, 'processing', NULL, 1, interval '-1 minute', 'host:2:bbbbbb', NULL),
            (5, 'ready', NULL, 1, interval '0', NULL, NULL),
            (6, 'failed', 'HTTP 401: bad key', 5, interval '0', NULL, 'req-failed'))
        AS d(n, status, error, attempts, lease, worker, request_id)
    WHERE c.name = 'secret-alpha' OR d.n IN (1, 5);
""")
COUNTS = Query("SELECT status, count(*) FROM memora.document GROUP BY status")


def seed(engine: Engine) -> dict[str, int]:
    """Put the documents of SEED in; the counts by status, read back from the database."""
    with engine.begin() as conn:
        SEED.run(conn)
        return {status: count for status, count in COUNTS.run(conn)}
