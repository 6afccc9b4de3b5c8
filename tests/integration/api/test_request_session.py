"""The API on its real request session (app/api/deps.get_session: commit when the request succeeds, roll back when
it fails), served by uvicorn on a database of its own, with clients in threads: what a failed request leaves,
concurrent writers of the same rows, and a connection the server killed between requests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import Engine

from app.api.main import create_app
from app.config import Settings
from app.db.engine import make_engine
from app.db.query import Query
from app.ingest.worker import Worker
from app.training.imports.importer import BATCH
from tests.conftest import sqlalchemy_engine
from tests.integration.search.test_collection import recounted, text_statistics
from tests.live_server import serving
from tests.schema import q

DOCUMENTS = Query(
    "SELECT d.external_id, d.content, d.version FROM memora.document d "
    "JOIN memora.collection c ON c.id = d.collection_id WHERE c.name = %(collection)s ORDER BY d.external_id"
)
EXAMPLES = Query(
    "SELECT count(*), count(DISTINCT e.input) FROM memora.example e "
    "JOIN memora.dataset d ON d.id = e.dataset_id WHERE d.name = %(dataset)s"
)
WAITING_API = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE application_name = 'memora-api' AND datname = current_database() AND wait_event_type = 'Lock'"
)
TERMINATE_API = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE application_name = 'memora-api' AND datname = current_database()"
)


@pytest.fixture
def settings(fresh_db_url: str) -> Settings:
    return Settings(database_url=fresh_db_url)


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    """The API with its own engine and sessions, as `memora serve` runs it (the worker off)."""
    with serving(create_app(settings)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=120) as client:
        yield client


@pytest.fixture
def check_engine(fresh_db_url: str) -> Iterator[Engine]:
    """A connection of the test's own, to read what the API committed."""
    engine = sqlalchemy_engine(fresh_db_url)
    yield engine
    engine.dispose()


def at_once(count: int, call: Callable[[httpx.Client, int], httpx.Response], base_url: str) -> list[httpx.Response]:
    """COUNT clients, each with its own connection, sending CALL(client, i) together (a barrier releases them)."""
    barrier = threading.Barrier(count, timeout=60)

    def one(i: int) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=120) as client:
            barrier.wait()
            return call(client, i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def make_dataset(client: httpx.Client, name: str = "ds") -> None:
    response = client.post("/v1/datasets", json={"name": name, "task": "classification"})
    assert response.status_code == 201, response.text


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def test_a_request_that_fails_after_writing_leaves_nothing(client: httpx.Client, check_engine: Engine) -> None:
    """A strict import writes its records in batches of BATCH as it reads; a bad record after the first batch fails
    the request, and the batch already written goes with it."""
    make_dataset(client)
    records = [{"text": f"record {i}", "label": "ham"} for i in range(BATCH + 10)] + [{"text": "", "label": 7}]

    response = client.post(
        "/v1/datasets/ds/import", params={"mode": "strict"}, content=jsonl(records),
        headers={"content-type": "application/x-ndjson"},
    )  # fmt: skip

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"
    with check_engine.connect() as conn:
        assert tuple(EXAMPLES.run(conn, {"dataset": "ds"}).one()) == (0, 0)
    assert client.get("/v1/datasets/ds/examples").json()["items"] == []
    assert client.get("/v1/datasets/ds").json()["examples"] == 0


def test_concurrent_upserts_of_one_external_id_end_with_one_document(
    client: httpx.Client, base_url: str, check_engine: Engine
) -> None:
    assert client.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing"}).status_code == 201
    writers = 8

    responses = at_once(
        writers,
        lambda c, i: c.post("/v1/collections/kb/documents", json={"external_id": "same", "content": f"Version {i}."}),
        base_url,
    )

    assert [r.status_code for r in responses] == [202] * writers, [r.text for r in responses]
    actions = sorted(r.json()["documents"][0]["action"] for r in responses)
    assert actions == ["created"] + ["updated"] * (writers - 1)
    with check_engine.connect() as conn:
        rows = DOCUMENTS.run(conn, {"collection": "kb"}).all()
    assert len(rows) == 1
    assert rows[0].external_id == "same"
    assert rows[0].content in {f"Version {i}." for i in range(writers)}
    listed = client.get("/v1/collections/kb/documents").json()["items"]
    assert [doc["external_id"] for doc in listed] == ["same"]


def test_concurrent_imports_into_one_dataset_store_each_record_once(
    client: httpx.Client, base_url: str, check_engine: Engine
) -> None:
    make_dataset(client)
    records = [{"text": f"record {i}", "label": "spam" if i % 2 else "ham"} for i in range(300)]
    body = jsonl(records)

    responses = at_once(
        2,
        lambda c, i: c.post("/v1/datasets/ds/import", content=body, headers={"content-type": "application/x-ndjson"}),
        base_url,
    )

    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    reports = [r.json() for r in responses]
    assert sum(report["stored"] for report in reports) == len(records)
    assert sum(report["duplicates"] for report in reports) == len(records)
    with check_engine.connect() as conn:
        assert tuple(EXAMPLES.run(conn, {"dataset": "ds"}).one()) == (len(records), len(records))


def test_concurrent_snapshots_are_whole_and_a_clashing_name_is_a_409(client: httpx.Client, base_url: str) -> None:
    make_dataset(client)
    first = [{"text": f"first {i}", "label": "ham"} for i in range(BATCH + 500)]
    assert client.post("/v1/datasets/ds/examples", json=first[:100]).status_code == 201
    ndjson = {"content-type": "application/x-ndjson"}

    def call(c: httpx.Client, i: int) -> httpx.Response:
        if i == 0:  # an import of more than one batch, while the snapshots freeze the dataset
            return c.post("/v1/datasets/ds/import", content=jsonl(first[100:]), headers=ndjson)
        return c.post("/v1/datasets/ds/snapshots", json={"name": "v1" if i < 3 else f"v{i}"})

    responses = at_once(5, call, base_url)

    assert responses[0].status_code == 200, responses[0].text
    clash = sorted(r.status_code for r in responses[1:3])
    assert clash == [201, 409], [r.text for r in responses[1:3]]
    conflict = next(r for r in responses[1:3] if r.status_code == 409).json()["error"]
    assert conflict["code"] == "conflict"
    assert conflict["details"] == [{"field": "body.name", "reason": "is taken"}]
    assert [r.status_code for r in responses[3:]] == [201, 201]
    for snapshot in client.get("/v1/datasets/ds/snapshots").json():
        # All of the import or none of it: it commits once, at the end of its request.
        assert snapshot["examples"] in {100, len(first)}, snapshot
        listed = client.get(f"/v1/datasets/ds/snapshots/{snapshot['name']}/examples", params={"limit": 1000})
        assert listed.status_code == 200
    names = [s["name"] for s in client.get("/v1/datasets/ds/snapshots").json()]
    assert sorted(names) == ["v1", "v3", "v4"]


def test_bm25_statistics_equal_a_recount_after_concurrent_workers(
    client: httpx.Client, settings: Settings, check_engine: Engine
) -> None:
    collection = {"name": "wk", "embedding_provider": "hashing", "chunking": {"size": 24, "overlap": 0}}
    assert client.post("/v1/collections", json=collection).status_code == 201
    documents = [
        {"external_id": f"doc-{i}", "content": f"Paragraph {i} is about burrowing animal number {i}. " * (1 + i % 4)}
        for i in range(40)
    ]
    assert client.post("/v1/collections/wk/documents", json=documents).status_code == 202
    engines = [make_engine(settings, "worker") for _ in range(3)]
    stop = threading.Event()
    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            stats = list(pool.map(lambda e: Worker(settings, e).run(stop, until_empty=True), engines))
    finally:
        for engine in engines:
            engine.dispose()

    listed = client.get("/v1/collections/wk/documents", params={"limit": 1000}).json()["items"]
    assert [doc["status"] for doc in listed] == ["ready"] * len(documents)
    assert sum(s.documents for s in stats) == len(documents)
    with check_engine.connect() as conn:
        stored = text_statistics(conn, "wk")
        assert stored == recounted(conn, "wk")
    assert stored[0][0] >= len(documents)
    # An update re-chunks; the statistics follow the replaced chunks too.
    changed = [doc | {"content": f"Changed text {i} about aardvarks."} for i, doc in enumerate(documents[:10])]
    assert client.post("/v1/collections/wk/documents", json=changed).status_code == 202
    engines = [make_engine(settings, "worker") for _ in range(2)]
    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            list(pool.map(lambda e: Worker(settings, e).run(stop, until_empty=True), engines))
    finally:
        for engine in engines:
            engine.dispose()
    with check_engine.connect() as conn:
        assert text_statistics(conn, "wk") == recounted(conn, "wk")
        assert text_statistics(conn, "wk")[1]["aardvark"] == len(changed)


def test_a_killed_connection_between_requests_is_not_a_500(client: httpx.Client, fresh_db_url: str) -> None:
    """The server ends the API's backends (pg_terminate_backend, as a failover or an idle timeout would); the
    pool notices on checkout (pool_pre_ping) and the next requests succeed."""
    assert client.post("/v1/datasets", json={"name": "ds", "task": "classification"}).status_code == 201
    for _ in range(3):
        assert client.get("/v1/datasets/ds").status_code == 200
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            killed = conn.execute(TERMINATE_API).fetchone()
        assert killed is not None
        assert killed[0] >= 1, "the API held no connection to kill"

        response = client.get("/v1/datasets/ds")

        assert response.status_code == 200, response.text
        assert response.json()["name"] == "ds"


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/collections", {"name": "kb", "embedding_provider": "hashing"}),
     ("/v1/datasets", {"name": "ds", "task": "classification"})],
)  # fmt: skip
def test_two_creates_of_one_name_at_once_are_a_201_and_a_409(
    client: httpx.Client, base_url: str, path: str, body: dict[str, Any]
) -> None:
    responses = at_once(4, lambda c, i: c.post(path, json=body), base_url)

    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409], [r.text for r in responses]
    for conflict in (r.json()["error"] for r in responses if r.status_code == 409):
        assert conflict["code"] == "conflict"
    assert [row["name"] for row in client.get(path).json()] == [body["name"]]


def test_an_import_into_a_dataset_being_deleted_is_not_a_500(client: httpx.Client, base_url: str) -> None:
    make_dataset(client)
    body = jsonl([{"text": f"record {i}", "label": "ham"} for i in range(2000)])
    ndjson = {"content-type": "application/x-ndjson"}

    def call(c: httpx.Client, i: int) -> httpx.Response:
        if i == 0:
            return c.post("/v1/datasets/ds/import", content=body, headers=ndjson)
        return c.delete("/v1/datasets/ds")

    imported, deleted = at_once(2, call, base_url)

    assert deleted.status_code == 204, deleted.text
    assert imported.status_code in (200, 404), imported.text
    assert client.get("/v1/datasets/ds").status_code == 404


DELETE_KB = "DELETE FROM memora.collection WHERE name = 'kb'"
DELETE_DS = (
    "DELETE FROM memora.snapshot WHERE dataset_id = (SELECT id FROM memora.dataset WHERE name = 'ds');"
    "DELETE FROM memora.dataset WHERE name = 'ds'"
)
DELETE_S0 = "DELETE FROM memora.snapshot WHERE name = 's0'"
TOMBSTONE = "UPDATE memora.example SET deleted_at = now()"  # what deleting an example a snapshot holds does


@pytest.mark.parametrize(
    ("gone", "delete", "request_"),
    [
        ("collection", DELETE_KB,
         ("POST", "/v1/collections/kb/documents", {"external_id": "new", "content": "Written as kb goes."})),
        ("dataset", DELETE_DS, ("POST", "/v1/datasets/ds/snapshots", {"name": "v1"})),
        ("dataset", DELETE_DS, ("POST", "/v1/datasets/ds/examples", [{"text": "written as ds goes", "label": "ham"}])),
        ("dataset", DELETE_DS, ("DELETE", "/v1/datasets/ds/snapshots/s0", None)),
        ("snapshot", DELETE_S0, ("DELETE", "/v1/datasets/ds/snapshots/s0", None)),
        ("dataset", DELETE_DS, ("DELETE", "/v1/datasets/ds/examples/{example}", None)),
        ("example", TOMBSTONE, ("DELETE", "/v1/datasets/ds/examples/{example}", None)),
        ("dataset", DELETE_DS, ("POST", "/v1/datasets/ds/dedup", {})),
    ],
    ids=["documents", "snapshot", "examples", "snapshot-delete-dataset-gone", "snapshot-deleted-twice",
         "example-delete-dataset-gone", "example-deleted-twice", "dedup-dataset-gone"],
)  # fmt: skip
def test_a_write_to_a_row_deleted_meanwhile_is_a_404(
    client: httpx.Client, fresh_db_url: str, gone: str, delete: str, request_: tuple[str, str, Any]
) -> None:
    """A delete holds the row when the request arrives; the request waits for it (its lookup keeps the row: FOR KEY
    SHARE of a parent it writes under, FOR UPDATE of a row it deletes) and then finds nothing: a 404, where it was
    a 500 (a foreign key violation, the SQL function's "does not exist", a delete that matched no row), a 201 that
    called a new example a duplicate, or a 204 or 200 for work on rows that were gone, from lookups that did not
    keep the row."""
    assert client.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing"}).status_code == 201
    make_dataset(client)
    assert client.post("/v1/datasets/ds/examples", json=[{"text": "old", "label": "ham"}]).status_code == 201
    assert client.post("/v1/datasets/ds/snapshots", json={"name": "s0"}).status_code == 201
    (example,) = client.get("/v1/datasets/ds/examples").json()["items"]
    method, path, body = request_
    path = path.format(example=example["id"])
    with psycopg.connect(fresh_db_url) as deleting, ThreadPoolExecutor(1) as pool:
        deleting.execute(q(delete))
        pending = pool.submit(client.request, method, path, json=body)
        with psycopg.connect(fresh_db_url, autocommit=True) as watch:
            polls = 0  # a safety net of 30 s; the request waits on the lock at once
            while watch.execute(WAITING_API).fetchone() == (0,) and not pending.done() and polls < 600:
                watch.execute("SELECT pg_sleep(0.05)")
                polls += 1
        deleting.commit()
        response = pending.result(timeout=60)

    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert gone in response.json()["error"]["message"]
