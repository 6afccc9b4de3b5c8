"""The process's Prometheus metrics: what the API and the worker count as they go.

They live in prometheus_client's process-wide registry, so the worker thread of `memora serve` and the API count
into the same one that GET /metrics reads. Labels never hold data: routes are templates
(`/v1/collections/{name}/search`), providers and kinds come from short fixed lists, and no collection, document or
dataset name appears. What the database knows (the queue, the leases) is read at scrape time by collector.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence, Sized
from typing import Protocol

from prometheus_client import Counter, Histogram, disable_created_metrics

from app.observe.context import request_context

worker_log = logging.getLogger("app.ingest.worker")

# The *_created series (when each counter started) double the text and tell an operator nothing a restart does not.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Handled(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def request_id(self) -> str | None: ...


REQUESTS = Counter(
    "memora_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "memora_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
CHUNKS_EMBEDDED = Counter(
    "memora_chunks_embedded",
    "Chunk texts the worker had an embedding provider turn into vectors (a vector reused from identical text is "
    "not counted); rate() gives chunks per second.",
)
DOCUMENTS_READY = Counter("memora_documents_ready", "Documents the worker chunked, embedded and marked ready.")
PROVIDER_ERRORS = Counter(
    "memora_provider_errors",
    "Failed calls to an embedding provider, by provider and kind (http_4xx, http_429, http_5xx, timeout, "
    "connection, other).",
    ["provider", "kind"],
)
PROVIDER_RETRIES = Counter(
    "memora_provider_retries",
    "Calls to an embedding provider tried again after a failure, by provider and the kind of that failure.",
    ["provider", "kind"],
)

UNMATCHED_ROUTE = "unmatched"  # a path no route serves: its raw text is the client's, never a label


def status_kind(status_code: int) -> str:
    """The kind of a provider's HTTP error, as PROVIDER_ERRORS counts it."""
    return "http_429" if status_code == 429 else "http_5xx" if status_code >= 500 else "http_4xx"


def provider_failed(provider: str, kind: str, *, retried: bool) -> None:
    """Count one failed call to PROVIDER, and its retry if RETRIED."""
    PROVIDER_ERRORS.labels(provider, kind).inc()
    if retried:
        PROVIDER_RETRIES.labels(provider, kind).inc()


def chunks_embedded(texts: Sized) -> None:
    CHUNKS_EMBEDDED.inc(len(texts))


def documents_ready(docs: Sequence[Handled]) -> None:
    """Count DOCS ready, and say so in a debug line per document that carries the id of its request."""
    DOCUMENTS_READY.inc(len(docs))
    if worker_log.isEnabledFor(logging.DEBUG):
        for doc in docs:
            with request_context(doc.request_id):
                worker_log.debug("document %s ready", doc.id)
