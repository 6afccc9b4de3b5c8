"""A real PostgreSQL with pgvector for every test.

The server: MEMORA_TEST_DATABASE_URL if set (a role that may CREATE DATABASE); else a testcontainers
pgvector/pgvector:pg17 container when a Docker engine answers; else the embedded server in a temporary directory.
Migrations run once, into a template database. Tests that only read and write get a session inside a transaction
that is rolled back; tests that need commits (or their own schema) get a database of their own.
"""

from __future__ import annotations

import gc
import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.api.deps import get_session
from app.api.main import create_app
from app.config import Settings
from app.db import migrate
from app.db.embedded import EmbeddedPostgres
from app.db.engine import make_engine, sqlalchemy_url
from tests.schema import SCHEMA

pytest_plugins = ["tests.openai_fixtures", "tests.beir_fixtures"]

# Starlette's TestClient names the server "testserver", a Host the API refuses unless told (app/api/hosts.py). Tests
# of the Host check itself pass allowed_hosts explicitly.
os.environ.setdefault("MEMORA_ALLOWED_HOSTS", "testserver")


# Tests that do not depend on the schema's name: the MEMORA_DB_SCHEMA=ml run leaves them out (the Makefile).
_ONE_SCHEMA = [Path(__file__).parent / part for part in ("unit", "fuzz", "integration/replicas")]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.path.is_relative_to(folder) for folder in _ONE_SCHEMA):
            item.add_marker(pytest.mark.one_schema)


def _docker_answers() -> bool:
    """True when a Docker engine responds (DOCKER_HOST or the default socket)."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    import docker

    # The docker client leaves a socket open when the engine does not answer.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(timeout=3)
            answers = bool(client.ping())
            client.close()
        except docker.errors.DockerException:
            answers = False
        gc.collect()
    return answers


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """libpq URL of a maintenance database on the test server."""
    if url := os.environ.get("MEMORA_TEST_DATABASE_URL"):
        yield url
    elif _docker_answers():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("pgvector/pgvector:pg17", driver=None) as container:
            yield container.get_connection_url()
    else:
        server = EmbeddedPostgres(tmp_path_factory.mktemp("embedded-pg"))
        yield server.ensure_running().url("postgres")
        server.stop()


def _database_url(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def create_database(server_url: str, template: str | None = None) -> str:
    """Create a database with a unique name on the test server; return its libpq URL."""
    name = f"memora_test_{uuid.uuid4().hex[:12]}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(statement)
    return _database_url(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    assert name
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    """Name of a database migrated to head, to clone tests' databases from."""
    url = create_database(server_url)
    migrate.upgrade(Settings(database_url=url))
    yield make_url(url).database or ""
    drop_database(server_url, url)


@pytest.fixture
def empty_db_url(server_url: str) -> Iterator[str]:
    """A new database with nothing in it (no migrations), dropped after the test."""
    url = create_database(server_url)
    yield url
    drop_database(server_url, url)


@pytest.fixture
def fresh_db_url(server_url: str, template_db: str) -> Iterator[str]:
    """A new, migrated database of the test's own, for tests that commit."""
    url = create_database(server_url, template=template_db)
    yield url
    drop_database(server_url, url)


@pytest.fixture(scope="session")
def db_url(server_url: str, template_db: str) -> Iterator[str]:
    """The migrated database that transactional tests share (each test rolls back)."""
    url = create_database(server_url, template=template_db)
    yield url
    drop_database(server_url, url)


@pytest.fixture(scope="session")
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url)


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings, "test")
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back when the test ends."""
    with engine.connect() as conn:
        transaction = conn.begin()
        yield conn
        transaction.rollback()


@pytest.fixture
def db(connection: Connection) -> Iterator[Session]:
    """An ORM session whose commits become savepoints of the test's transaction."""
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        yield session


def sqlalchemy_engine(url: str) -> Engine:
    """A throwaway engine on a libpq URL, for tests that work outside the shared database; its ORM statements name
    the schema the suite runs in, as the application's engines do (app/db/engine.make_engine)."""
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    if SCHEMA != "memora":
        return engine.execution_options(schema_translate_map={"memora": SCHEMA})
    return engine


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory for an embedded server of the test's own, stopped at the end."""
    path = tmp_path / "memora"
    yield path
    EmbeddedPostgres(path).stop()


def app_on(db: Session, settings: Settings, engine: Engine) -> FastAPI:
    """The REST API with SETTINGS, whose requests share DB, the test's rolled-back session (tests that change a
    setting make their own app through this)."""
    app = create_app(settings, engine=engine)

    def session() -> Iterator[Session]:
        yield db
        db.flush()

    app.dependency_overrides[get_session] = session
    return app


@pytest.fixture
def api(settings: Settings, engine: Engine, db: Session) -> Iterator[TestClient]:
    """A client of the REST API whose requests share the test's rolled-back transaction."""
    app = app_on(db, settings, engine)
    with TestClient(app) as client:
        app.state.audit.sessions = lambda: nullcontext(db)  # the trail too, rolled back with the test
        yield client
