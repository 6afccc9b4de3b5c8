"""A streaming replica of the test server (tests/conftest.py's embedded one), made once per session with
pg_basebackup, and apps that send their reads to it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from app.api.main import create_app
from app.config import Settings
from app.db.embedded import EmbeddedServer
from app.db.embedded_replica import EmbeddedReplica
from tests.conftest import _docker_answers


@pytest.fixture(scope="package")
def replica(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedReplica]:
    """A standby of the test server on loopback, streaming every database the tests make; stopped after this
    folder's tests, so the rest of the suite does not ship its WAL to it."""
    if os.environ.get("MEMORA_TEST_DATABASE_URL") or _docker_answers():
        pytest.skip("the replica tests copy the embedded test server; this run uses another server")
    url = make_url(server_url)
    assert url.port is not None
    assert url.password is not None
    server = EmbeddedServer(pid=0, port=url.port, password=str(url.password))
    standby = EmbeddedReplica.copy_of(server, tmp_path_factory.mktemp("replica") / "memora")
    yield standby
    standby.stop()


def on_replica(url: str, replica: EmbeddedReplica) -> str:
    """URL (a database on the test server) as the same database on REPLICA."""
    return make_url(url).set(port=replica.port).render_as_string(hide_password=False)


def caught_up(primary_url: str, replica_url: str, timeout: float = 30) -> None:
    """Wait until the replica has replayed all the primary has written so far (its database exists there, too)."""
    with psycopg.connect(primary_url, autocommit=True) as conn:
        (position,) = conn.execute("SELECT pg_current_wal_lsn()").fetchone() or (None,)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(replica_url, autocommit=True, connect_timeout=3) as conn:
                row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (position,)).fetchone()
                if row and row[0]:
                    return
        except psycopg.OperationalError:  # the database is not there yet
            pass
        assert time.monotonic() < deadline, f"the replica did not replay to {position} in {timeout}s"
        time.sleep(0.05)


def replica_settings(primary_url: str, *read_urls: str, **overrides: object) -> Settings:
    fields: dict[str, object] = {"replica_check_seconds": 0.1, "max_replica_lag": 2.0} | overrides
    return Settings(database_url=primary_url, read_database_urls=list(read_urls), **fields)  # type: ignore[arg-type]


@pytest.fixture
def replica_url(fresh_db_url: str, replica: EmbeddedReplica) -> str:
    """The test's own database, on the replica once it has it."""
    url = on_replica(fresh_db_url, replica)
    caught_up(fresh_db_url, url)
    return url


@pytest.fixture
def read_api(fresh_db_url: str, replica_url: str) -> Iterator[TestClient]:
    """The REST API on the test's database, with the replica as its read replica."""
    with TestClient(create_app(replica_settings(fresh_db_url, replica_url))) as client:
        trusted(client)
        yield client


def trusted(client: TestClient, timeout: float = 30) -> None:
    """Wait until CLIENT's app trusts its first replica: its first check may find it a little behind (WAL written
    since it caught up) and not trust it until a later check has measured its lag."""
    deadline = time.monotonic() + timeout
    while client.get("/healthz").json()["replicas"][0]["state"] != "ok":
        assert time.monotonic() < deadline, "the replica was not trusted in time"
        time.sleep(0.05)


@pytest.fixture
def replica_sql(replica: EmbeddedReplica) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A superuser connection to the replica, to pause and resume its replay; replay is resumed at the end."""
    server = replica.status()
    assert server is not None
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        yield conn
        conn.execute("SELECT pg_wal_replay_resume()")
