"""A key past its requests per minute gets a 429 with Retry-After, through the access check every route runs.

On this branch the access check still lets every request act as OPEN, so the test makes OPEN the key's principal;
once the check authenticates keys, the key's header alone does it (and the patch changes nothing).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.api.deps import get_session
from app.api.main import create_app
from app.auth import access, keys
from app.auth.principal import Role
from app.config import Settings


@pytest.fixture
def key_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth": "required", "rate_limit_per_minute": 0})


@pytest.fixture
def client(key_settings: Settings, engine: Engine, db: Session) -> Iterator[TestClient]:
    app = create_app(key_settings, engine=engine)

    def session() -> Iterator[Session]:
        yield db
        db.flush()

    app.dependency_overrides[get_session] = session
    with TestClient(app) as client:
        yield client


def test_a_key_past_its_limit_gets_429_with_retry_after(
    client: TestClient, key_settings: Settings, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = keys.create(db, key_settings, "limited", Role.read, rate_limit=2)
    monkeypatch.setattr(access, "OPEN", keys.principal_of(made.row))
    headers = {"Authorization": f"Bearer {made.secret}"}
    assert [client.get("/v1/collections", headers=headers).status_code for _ in range(2)] == [200, 200]
    refused = client.get("/v1/collections", headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "'limited'" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
