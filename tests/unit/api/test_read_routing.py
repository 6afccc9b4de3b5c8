"""ReadRouting (app/api/reads.py): a read that lost its replica runs again on the primary, its body replayed, and
no byte of the failed attempt reaches the client; other responses pass as they are, with the routing headers."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from app.api.reads import ReadRouting
from app.config import Settings


def app_failing(times: int, *, failed_flag: bool = True) -> tuple[Starlette, list[dict[str, Any]]]:
    """An app whose reads fail with a 503 the first TIMES times, as a lost replica's do (marked unless not
    FAILED_FLAG); it records what each attempt received."""
    attempts: list[dict[str, Any]] = []

    async def read(request: Request) -> JSONResponse:
        body = await request.json()
        attempts.append({"body": body, "primary_only": getattr(request.state, "primary_only", False)})
        if len(attempts) <= times:
            request.state.served_by = "replica 127.0.0.1:5433"
            request.state.replica_failed = failed_flag
            return JSONResponse({"error": {"code": "database_unavailable"}}, status_code=503)
        request.state.served_by = "primary"
        return JSONResponse({"echo": body})

    app = Starlette(routes=[Route("/read", read, methods=["POST"])])
    app.add_middleware(ReadRouting)
    app.state.replicas = object()
    app.state.settings = Settings()
    return app, attempts


def test_a_read_that_lost_its_replica_runs_again_on_the_primary() -> None:
    app, attempts = app_failing(1)
    response = TestClient(app).post("/read", json={"query": "aardvark"})
    assert response.status_code == 200
    assert response.json() == {"echo": {"query": "aardvark"}}
    assert response.headers["memora-served-by"] == "primary"
    assert attempts == [
        {"body": {"query": "aardvark"}, "primary_only": False},
        {"body": {"query": "aardvark"}, "primary_only": True},
    ]


def test_it_runs_again_once_only() -> None:
    app, attempts = app_failing(2)
    response = TestClient(app).post("/read", json={})
    assert response.status_code == 503
    assert len(attempts) == 2


def test_a_503_not_from_a_lost_replica_is_the_clients() -> None:
    app, attempts = app_failing(1, failed_flag=False)
    response = TestClient(app).post("/read", json={})
    assert response.status_code == 503
    assert response.headers["memora-served-by"] == "replica 127.0.0.1:5433"
    assert len(attempts) == 1


def test_without_replicas_it_adds_nothing() -> None:
    app, _ = app_failing(0)
    app.state.replicas = None
    response = TestClient(app).post("/read", json={})
    assert response.status_code == 200
    assert "memora-served-by" not in response.headers


def test_a_body_past_a_json_bodys_limit_is_not_kept_to_run_again() -> None:
    app, attempts = app_failing(1)
    app.state.settings = Settings(max_json_body_bytes=1024)
    response = TestClient(app).post("/read", json={"text": "x" * 2000})
    assert response.status_code == 503
    assert len(attempts) == 1
