"""GET /healthz and the API's error bodies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.api.main import create_app
from app.config import Settings
from app.db import migrate
from tests.conftest import sqlalchemy_engine


def client_for(url: str, engine: Engine | None = None) -> TestClient:
    return TestClient(create_app(Settings(database_url=url), engine=engine))


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client


def test_healthz_reports_versions_and_revision(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    database = body["database"]
    assert database["reachable"] is True
    assert database["embedded"] is False
    assert int(database["server_version"].split(".")[0]) >= 15
    assert database["pgvector_version"].startswith("0.")
    assert database["revision"] == database["head"] == migrate.head_revision()


def test_healthz_on_an_unmigrated_database_is_503(empty_db_url: str) -> None:
    engine = sqlalchemy_engine(empty_db_url)
    with client_for(empty_db_url, engine) as client:
        response = client.get("/healthz")
    engine.dispose()

    assert response.status_code == 503
    assert response.json()["status"] == "migrations_pending"
    assert response.json()["database"]["revision"] is None


def test_healthz_when_the_database_is_down_is_503() -> None:
    url = "postgresql://nobody@127.0.0.1:9/nothing"
    with client_for(url) as client:
        response = client.get("/healthz")

    assert response.status_code == 503
    database = response.json()["database"]
    assert database["reachable"] is False
    assert "127.0.0.1" in database["error"]


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert "/healthz" in client.get("/openapi.json").json()["paths"]


def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not Found"}}


def test_wrong_method_is_a_json_405(client: TestClient) -> None:
    response = client.post("/healthz")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
