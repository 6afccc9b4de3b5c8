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


def lost(error: Exception) -> Exception:
    """ERROR as SQLAlchemy raises it from a statement."""
    from sqlalchemy.exc import DBAPIError

    return DBAPIError.instance("SELECT 1", None, error, Exception)


def a_read() -> tuple[Any, Any]:
    """A request's Reads on a replica (its engine never connects here), and the request."""
    from starlette.requests import Request as StarletteRequest

    from app.db.replicas import Replica

    app = Starlette()
    app.state.settings = Settings()
    request = StarletteRequest({"type": "http", "app": app, "state": {}, "headers": [], "method": "GET"})
    return Replica(Settings(), "postgresql://memora@127.0.0.1:9/memora"), request


def fail_on(replica: Any, request: Any, error: Exception) -> None:
    """A read route on REPLICA that raises ERROR."""
    from app.api.reads import reading

    with reading(request, None) as reads:  # type: ignore[arg-type]
        reads.replica = replica
        raise error


def test_a_query_the_standby_cancelled_for_recovery_is_a_503_to_run_again() -> None:
    import psycopg
    import pytest

    from app.errors import DatabaseUnavailableError

    replica, request = a_read()
    conflict = psycopg.errors.SerializationFailure("canceling statement due to conflict with recovery")
    with pytest.raises(DatabaseUnavailableError, match="was lost"):
        fail_on(replica, request, lost(conflict))
    assert request.state.replica_failed
    assert replica.health.state == "down"


def test_a_serialization_failure_on_the_primary_is_not_a_lost_replica() -> None:
    import psycopg
    import pytest

    replica, request = a_read()
    failure = psycopg.errors.SerializationFailure("could not serialize access due to concurrent update")
    with pytest.raises(Exception, match="could not serialize"):
        fail_on(replica, request, lost(failure))
    assert not getattr(request.state, "replica_failed", False)
    assert replica.health.state == "unchecked"
