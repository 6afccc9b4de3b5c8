"""Read replicas: reads go to a fit replica and writes to the primary; a write's position is honoured by the reads
that pass it; a lagging or stopped replica is passed over; every read route works on a standby."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx import Response

from app.api.main import create_app
from app.api.reads import READ_AFTER, get_reads, get_stream_read_session
from app.auth.rules import api_routes, rule_of
from app.config import Settings
from app.db.embedded_replica import EmbeddedReplica
from app.db.engine import make_engine
from app.db.replicas import parse_lsn
from tests.integration.auth.conftest import Seeded, _seed
from tests.integration.auth.test_access_matrix import PARAMS, url_of
from tests.integration.replicas.conftest import caught_up, replica_settings, trusted
from tests.integration.search.corpus import CORPUS, QUERY, URL, document, store_corpus

SEARCHES: list[dict[str, Any]] = [
    {"query": "aardvark", "mode": "text", "include": ["text", "scores", "highlights"]},
    {"embedding": QUERY, "mode": "vector"},
    {"embedding": QUERY, "mode": "vector", "ef_search": 1},
    {"query": "aardvark", "embedding": QUERY, "mode": "hybrid", "fusion": "rrf", "filter": {"year": {"$gte": 2020}}},
    {"query": "nocturnal aardvark of the savanna", "embedding": QUERY, "include": ["sql"]},
]


def served_by(response: Response) -> str:
    return response.headers["memora-served-by"]


def timeless(body: Any) -> Any:
    """BODY without the time it took."""
    return {k: v for k, v in body.items() if k != "took_ms"} if isinstance(body, dict) else body


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def paused(replica_sql: psycopg.Connection[Any]) -> None:
    replica_sql.execute("SELECT pg_wal_replay_pause()")
    wait_for(lambda: (replica_sql.execute("SELECT pg_get_wal_replay_pause_state()").fetchone() or [""])[0] == "paused")


def test_search_through_the_replica_gives_the_primarys_results(
    read_api: TestClient, fresh_db_url: str, replica_url: str
) -> None:
    store_corpus(read_api)
    caught_up(fresh_db_url, replica_url)
    with TestClient(create_app(Settings(database_url=fresh_db_url))) as primary:
        for body in SEARCHES:
            on_replica, on_primary = read_api.post(URL, json=body), primary.post(URL, json=body)
            assert on_replica.status_code == on_primary.status_code == 200, on_replica.text
            assert served_by(on_replica).startswith("replica "), body
            assert "memora-served-by" not in on_primary.headers  # no replicas, no word of them
            assert timeless(on_replica.json()) == timeless(on_primary.json()), body  # and the same SQL


def test_writes_go_to_the_primary_and_answer_with_their_position(read_api: TestClient) -> None:
    created = read_api.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 4})
    assert created.status_code == 201, created.text
    assert "memora-served-by" not in created.headers
    first = parse_lsn(created.headers["memora-lsn"])
    stored = read_api.post("/v1/collections/kb/documents", json=[document(CORPUS[0])])
    assert parse_lsn(stored.headers["memora-lsn"]) > first
    listed = read_api.get("/v1/collections")
    assert "memora-lsn" not in listed.headers  # reads have no position of their own


def test_a_read_after_a_position_sees_the_write_even_while_the_replica_is_behind(
    read_api: TestClient, replica_sql: psycopg.Connection[Any]
) -> None:
    read_api.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 4})
    wait_for(lambda: read_api.get("/v1/collections/kb").status_code == 200)
    paused(replica_sql)
    written = read_api.post("/v1/collections/kb/documents", json=[document(CORPUS[0])])
    position = written.headers["memora-lsn"]

    eventual = read_api.get("/v1/collections/kb/documents/lexical")
    assert (eventual.status_code, served_by(eventual)[:7]) == (404, "replica")  # the default: what it holds

    consistent = read_api.get("/v1/collections/kb/documents/lexical", headers={READ_AFTER: position})
    assert (consistent.status_code, served_by(consistent)) == (200, "primary")
    body = {"query": "aardvark", "mode": "text", "consistency": {"after": position}}
    searched = read_api.post(URL, json=body)
    assert [hit["external_id"] for hit in searched.json()["results"]] == ["lexical"]
    assert served_by(searched) == "primary"

    replica_sql.execute("SELECT pg_wal_replay_resume()")
    wait_for(lambda: served_by(read_api.post(URL, json=body)).startswith("replica "))
    assert [hit["external_id"] for hit in read_api.post(URL, json=body).json()["results"]] == ["lexical"]


def test_every_write_then_read_pair_sees_its_write(read_api: TestClient) -> None:
    read_api.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 4})
    servers: dict[str, int] = {}
    for n in range(60):
        item = CORPUS[n % len(CORPUS)] | {"external_id": f"doc-{n}"}
        position = read_api.post("/v1/collections/kb/documents", json=[document(item)]).headers["memora-lsn"]
        read = read_api.get(f"/v1/collections/kb/documents/doc-{n}", headers={READ_AFTER: position})
        assert read.status_code == 200, (n, read.text)
        servers[served_by(read)[:7]] = servers.get(served_by(read)[:7], 0) + 1
    assert set(servers) <= {"replica", "primary"}


def test_a_lagging_replica_is_passed_over_until_it_catches_up(
    fresh_db_url: str, replica_url: str, replica_sql: psycopg.Connection[Any]
) -> None:
    settings = replica_settings(fresh_db_url, replica_url, max_replica_lag=0.3)
    with TestClient(create_app(settings)) as api:
        trusted(api)
        api.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 4})
        paused(replica_sql)
        api.post("/v1/collections/kb/documents", json=[document(CORPUS[0])])
        wait_for(lambda: api.get("/healthz").json()["replicas"][0]["state"] == "lagging")
        lagging = api.get("/healthz").json()["replicas"][0]
        assert lagging["lag_seconds"] > 0.3
        assert lagging["lag_bytes"] > 0
        assert served_by(api.get("/v1/collections")) == "primary"
        replica_sql.execute("SELECT pg_wal_replay_resume()")
        wait_for(lambda: api.get("/healthz").json()["replicas"][0]["state"] == "ok")
        assert served_by(api.get("/v1/collections")).startswith("replica ")


def test_a_replica_behind_at_start_up_is_not_trusted_until_its_lag_is_measured(
    fresh_db_url: str, replica_url: str, replica_sql: psycopg.Connection[Any]
) -> None:
    """At a process's first check there is one sample of the primary's position: a replica behind it has a lag that
    is bounded from below only, so it serves nothing until a later check measures it."""
    with TestClient(create_app(Settings(database_url=fresh_db_url))) as primary:
        primary.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 4})
        paused(replica_sql)
        primary.post("/v1/collections/kb/documents", json=[document(CORPUS[0])])
    with TestClient(create_app(replica_settings(fresh_db_url, replica_url, max_replica_lag=60))) as api:
        first = api.get("/healthz").json()["replicas"][0]
        assert first["state"] == "lagging"
        assert first["lag_bytes"] > 0
        assert served_by(api.get("/v1/collections/kb/documents/lexical")) == "primary"
        replica_sql.execute("SELECT pg_wal_replay_resume()")
        wait_for(lambda: api.get("/healthz").json()["replicas"][0]["state"] == "ok")
        found = api.get("/v1/collections/kb/documents/lexical")
        assert (found.status_code, served_by(found)[:7]) == (200, "replica")


def test_reads_keep_working_while_the_replica_stops_and_starts(
    read_api: TestClient, fresh_db_url: str, replica_url: str, replica: EmbeddedReplica
) -> None:
    store_corpus(read_api)
    caught_up(fresh_db_url, replica_url)
    statuses: list[tuple[int, str]] = []
    done = threading.Event()

    def search_until_done() -> None:
        while not done.is_set():
            response = read_api.post(URL, json=SEARCHES[3])
            statuses.append((response.status_code, served_by(response)[:7]))

    reader = threading.Thread(target=search_until_done)
    reader.start()
    try:
        wait_for(lambda: len(statuses) > 20)
        replica.stop()
        stopped_at = len(statuses)
        wait_for(lambda: len(statuses) > stopped_at + 20)
        assert read_api.get("/healthz").json()["replicas"][0]["state"] == "down"
        replica.ensure_running()
        wait_for(lambda: statuses[-1][1] == "replica", timeout=30)
    finally:
        done.set()
        reader.join()
        replica.ensure_running()
    assert {status for status, _ in statuses} == {200}
    assert {server for _, server in statuses[stopped_at + 1 : stopped_at + 20]} == {"primary"}


def _reads_of(route: APIRoute) -> bool:
    """Does ROUTE read through app/api/reads.py (and so on a replica)?"""
    calls, stack = set(), [route.dependant]
    while stack:
        dependant = stack.pop()
        calls.add(dependant.call)
        stack.extend(dependant.dependencies)
    return bool(calls & {get_reads, get_stream_read_session})


READ_ROUTES = [route for route in api_routes(create_app(Settings(database_url="postgresql://x/y"))) if _reads_of(route)]
BODIES = {"/v1/collections/{name}/search": SEARCHES[3], "/v1/collections/{name}/answer": {"question": "what digs?"}}


def test_the_read_routes_are_the_expected_ones() -> None:
    """A route moved to the replicas (or off them) is a decision: it is made here."""
    assert sorted(f"{sorted(r.methods)[0]} {r.path}" for r in READ_ROUTES) == sorted(
        [
            "GET /v1/collections", "GET /v1/collections/{name}", "POST /v1/collections/{name}/search",
            "POST /v1/collections/{name}/answer", "GET /v1/collections/{name}/documents",
            "GET /v1/collections/{name}/documents/{external_id:path}", "GET /v1/collections/{name}/chunks",
            "GET /v1/collections/{name}/embeddings", "GET /v1/collections/{name}/embeddings/{number}",
            "GET /v1/collections/{name}/evaluations", "GET /v1/collections/{name}/evaluations/{run}",
            "GET /v1/datasets", "GET /v1/datasets/{name}", "GET /v1/datasets/{name}/examples",
            "GET /v1/datasets/{name}/examples/{example_id}", "GET /v1/datasets/{name}/labels",
            "GET /v1/datasets/{name}/split", "GET /v1/datasets/{name}/snapshots",
            "GET /v1/datasets/{name}/snapshots/{snapshot}", "GET /v1/datasets/{name}/snapshots/{snapshot}/examples",
            "GET /v1/datasets/{name}/snapshots/{snapshot}/examples/{example_id}", "GET /v1/datasets/{name}/batches",
            "GET /v1/datasets/{name}/export",
        ]
    )  # fmt: skip


@pytest.fixture
def seeded_on_both(fresh_db_url: str, replica_url: str) -> Iterator[Seeded]:
    """The access matrix's rows (tests/integration/auth/conftest.py), on the primary and then on the replica."""
    settings = Settings(database_url=fresh_db_url, auth="off", openai_base_url="http://127.0.0.1:9/v1")
    seeded = Seeded(fresh_db_url, make_engine(settings, "test"), settings)
    with TestClient(create_app(settings, engine=seeded.engine)) as client:
        _seed(client, seeded)
    caught_up(fresh_db_url, replica_url)
    yield seeded
    seeded.engine.dispose()


def test_every_read_route_is_served_by_the_replica(fresh_db_url: str, replica_url: str, seeded_on_both: Seeded) -> None:
    """A read route that locks rows or writes would fail on a standby ("cannot execute ... in a read-only
    transaction"): each one answers there as it does on the primary."""
    settings = replica_settings(fresh_db_url, replica_url, openai_base_url="http://127.0.0.1:9/v1")
    with TestClient(create_app(settings)) as api, TestClient(create_app(Settings(database_url=fresh_db_url))) as ref:
        trusted(api)
        for route in READ_ROUTES:
            method = sorted(route.methods)[0]
            rule = rule_of(route)
            assert rule is not None
            url = url_of(route, rule, seeded_on_both)
            params, body = PARAMS.get((method, route.path)), BODIES.get(route.path)
            answered = api.request(method, url, params=params, json=body)
            expected = ref.request(method, url, params=params, json=body)
            assert answered.status_code == expected.status_code, (route.path, answered.text)
            assert served_by(answered).startswith("replica "), route.path
            if answered.headers["content-type"] == "application/json":
                assert timeless(answered.json()) == timeless(expected.json()), route.path
            else:
                assert answered.content == expected.content, route.path


def test_healthz_reports_each_replica(fresh_db_url: str, replica_url: str) -> None:
    nowhere = replica_url.replace(f":{replica_url.split(':')[-1].split('/')[0]}/", ":9/")
    settings = replica_settings(fresh_db_url, replica_url, nowhere, fresh_db_url)
    with TestClient(create_app(settings)) as api:
        trusted(api)
        health = api.get("/healthz")
        assert health.status_code == 200
        ok, down, primary = health.json()["replicas"]
        assert (ok["state"], ok["lag_seconds"], down["state"], down["name"]) == ("ok", 0, "down", "127.0.0.1:9")
        assert ok["replayed"]
        assert down["error"]
        assert primary["state"] == "not_a_replica"
        assert served_by(api.get("/v1/collections")) == f"replica {ok['name']}"
        metrics = api.get("/metrics").text
        assert f'memora_replica_serving{{replica="{ok["name"]}"}} 1.0' in metrics
        assert 'memora_replica_serving{replica="127.0.0.1:9"} 0.0' in metrics
        assert f'memora_replica_lag_seconds{{replica="{ok["name"]}"}} 0.0' in metrics


def test_a_position_that_is_not_one_is_a_422_naming_it(read_api: TestClient) -> None:
    bad_header = read_api.get("/v1/collections", headers={READ_AFTER: "yesterday"})
    assert bad_header.status_code == 422
    assert bad_header.json()["error"]["details"][0]["field"] == f"header.{READ_AFTER}"
    bad_body = read_api.post(URL, json={"query": "x", "consistency": {"after": "0/xyz"}})
    assert bad_body.status_code == 422
    assert bad_body.json()["error"]["details"][0]["field"] == "body.consistency.after"
