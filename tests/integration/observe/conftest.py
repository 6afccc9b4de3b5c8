"""The API as `memora serve` runs it (its own engine and pool, real commits) on a database of the test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.api.main import create_app
from app.config import Settings
from app.db.engine import make_engine


@pytest.fixture
def committed(fresh_db_url: str) -> Iterator[Engine]:
    """An engine on the test's database, whose writes the app's own connections see."""
    engine = make_engine(Settings(database_url=fresh_db_url), "test")
    yield engine
    engine.dispose()


@pytest.fixture
def client(fresh_db_url: str) -> Iterator[TestClient]:
    """The API on the test's database, with its own engine and pool."""
    with TestClient(create_app(Settings(database_url=fresh_db_url))) as client:
        yield client
