"""Browsers and names: the Host check (DNS rebinding), CORS only for listed origins, and writes from a foreign web
page refused before any route runs (app/api/hosts.py, app/api/origins.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.api.hosts import AllowedHosts, host_name
from app.config import Settings
from tests.conftest import app_on

UPLOAD = "/v1/collections/kb/documents"
EVIL = "http://evil.example"
LISTED = "https://app.example.com"

MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(settings: Settings, engine: Engine, db: Session) -> Iterator[MakeClient]:
    """A client of the API with some settings changed, its requests in the test's rolled-back transaction, and no
    Host allowed beyond the defaults unless the test says so. Keys are off (MEMORA_AUTH=off), whatever address the
    test binds: the checks here apply in every mode, and keys are tests/integration/auth/'s."""
    made: list[TestClient] = []

    def make(base_url: str = "http://localhost:8000", **changes: Any) -> TestClient:
        app = app_on(db, settings.model_copy(update={"allowed_hosts": [], "auth": "off", **changes}), engine)
        client = TestClient(app, base_url=base_url).__enter__()
        app.state.audit.sessions = lambda: nullcontext(db)
        made.append(client)
        return client

    yield make
    for client in made:
        client.__exit__(None, None, None)


@pytest.mark.parametrize(
    ("header", "name"),
    [("localhost:8000", "localhost"), ("[::1]:8000", "::1"), ("::1", "::1"), ("LocalHost.", "localhost"), ("", "")],
)
def test_host_name_drops_port_brackets_case_and_final_dot(header: str, name: str) -> None:
    assert host_name(header) == name


def test_allowed_hosts_patterns() -> None:
    allowed = AllowedHosts(["memora.internal", "*.example.com"])
    assert [allowed.allows(h) for h in ("memora.internal:80", "a.example.com", "a.b.example.com")] == [True] * 3
    assert [allowed.allows(h) for h in ("example.com", "evil.com", "memora.internal.evil.com", "")] == [False] * 4
    assert AllowedHosts(["*"]).allows("anything.at.all")


def test_a_foreign_host_is_refused_before_any_route(make_client: MakeClient) -> None:
    client = make_client()
    response = client.get("/v1/collections", headers={"Host": "evil.example"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "host_not_allowed"
    assert "MEMORA_ALLOWED_HOSTS" in error["message"]
    assert "'evil.example'" in error["message"]
    assert response.headers["X-Request-ID"]
    # Nothing ran: a write to a foreign Host stores nothing.
    assert client.post("/v1/collections", json={"name": "kb"}, headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/v1/collections").json() == []


@pytest.mark.parametrize("host", ["localhost:8000", "localhost", "127.0.0.1:8000", "[::1]:8000"])
def test_loopback_names_are_allowed(make_client: MakeClient, host: str) -> None:
    assert make_client().get("/v1/collections", headers={"Host": host}).status_code == 200


def test_healthz_answers_any_host(make_client: MakeClient) -> None:
    response = make_client().get("/healthz", headers={"Host": "10.0.0.7:8000"})
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_the_bound_address_is_allowed_unless_a_wildcard(make_client: MakeClient) -> None:
    assert make_client(host="10.1.2.3").get("/v1/collections", headers={"Host": "10.1.2.3:8000"}).status_code == 200
    wildcard = make_client(host="0.0.0.0")
    assert wildcard.get("/v1/collections", headers={"Host": "0.0.0.0:8000"}).status_code == 400
    assert wildcard.get("/v1/collections", headers={"Host": "10.1.2.3:8000"}).status_code == 400
    assert wildcard.get("/v1/collections", headers={"Host": "localhost:8000"}).status_code == 200


def test_memora_allowed_hosts_adds_names_and_patterns(make_client: MakeClient) -> None:
    client = make_client(allowed_hosts=["memora.internal", "*.example.com"])
    assert client.get("/v1/collections", headers={"Host": "memora.internal:8000"}).status_code == 200
    assert client.get("/v1/collections", headers={"Host": "api.example.com"}).status_code == 200
    assert client.get("/v1/collections", headers={"Host": "example.com"}).status_code == 400
    anything = make_client(allowed_hosts=["*"])
    assert anything.get("/v1/collections", headers={"Host": "whatever.test"}).status_code == 200


def _preflight(client: TestClient, origin: str) -> Any:
    return client.options(
        "/v1/collections",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_no_cors_headers_by_default(make_client: MakeClient) -> None:
    client = make_client()
    simple = client.get("/v1/collections", headers={"Origin": EVIL})
    preflight = _preflight(client, EVIL)
    assert simple.status_code == 200
    assert not [h for h in simple.headers if h.lower().startswith("access-control-")]
    assert not [h for h in preflight.headers if h.lower().startswith("access-control-")]


def test_cors_for_a_listed_origin_only(make_client: MakeClient) -> None:
    client = make_client(cors_origins=[LISTED + "/"])
    simple = client.get("/v1/collections", headers={"Origin": LISTED})
    assert simple.headers["Access-Control-Allow-Origin"] == LISTED
    assert {"x-request-id", "x-memora-examples"} <= {
        h.strip().lower() for h in simple.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert "Access-Control-Allow-Credentials" not in simple.headers
    preflight = _preflight(client, LISTED)
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == LISTED
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "x-api-key", "content-type", "x-request-id"} <= allowed
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]

    unlisted = client.get("/v1/collections", headers={"Origin": EVIL})
    assert "Access-Control-Allow-Origin" not in unlisted.headers
    assert "Access-Control-Allow-Origin" not in _preflight(client, EVIL).headers


def _upload(client: TestClient, **headers: str) -> Any:
    return client.post(UPLOAD, files=[("files", ("note.txt", b"a page's upload"))], headers=headers)


def test_a_cross_origin_upload_is_refused_and_stores_nothing(make_client: MakeClient) -> None:
    client = make_client()
    assert client.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing"}).status_code == 201
    refused = _upload(client, Origin=EVIL)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "cross_origin_request"
    assert "MEMORA_CORS_ORIGINS" in refused.json()["error"]["message"]
    assert _upload(client, Origin="null").status_code == 403
    assert _upload(client, **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.delete("/v1/collections/kb", headers={"Origin": EVIL}).status_code == 403
    assert client.get(UPLOAD).json()["items"] == []

    # Clients that are not browsers send no Origin; a page of the server's own origin is itself.
    assert _upload(client).status_code == 202
    assert _upload(client, Origin="http://localhost:8000", **{"Sec-Fetch-Site": "same-origin"}).status_code == 202
    assert len(client.get(UPLOAD).json()["items"]) == 1


def test_a_listed_origin_may_write(make_client: MakeClient) -> None:
    client = make_client(cors_origins=[LISTED])
    assert client.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing"}).status_code == 201
    response = _upload(client, Origin=LISTED, **{"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 202
    assert response.headers["Access-Control-Allow-Origin"] == LISTED
    assert _upload(client, Origin=EVIL).status_code == 403
    assert [item["external_id"] for item in client.get(UPLOAD).json()["items"]] == ["note.txt"]


def test_reads_from_a_foreign_page_are_not_refused(make_client: MakeClient) -> None:
    """The browser hides the answer from the page (no CORS header); refusing reads would only break links."""
    client = make_client()
    response = client.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing"})
    assert response.status_code == 201
    assert client.get(UPLOAD, headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_a_server_bound_to_every_address_says_what_it_answers_to(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.api"):
        make_client(host="0.0.0.0")
        make_client(host="0.0.0.0", allowed_hosts=["memora.internal"])
        make_client(host="127.0.0.1")
    lines = [r.getMessage() for r in caplog.records if "MEMORA_ALLOWED_HOSTS" in r.getMessage()]
    assert lines == [
        "listening on 0.0.0.0, answering requests that name localhost, 127.0.0.1 or ::1 only; set "
        "MEMORA_ALLOWED_HOSTS to the names and addresses clients use to reach this server"
    ]
