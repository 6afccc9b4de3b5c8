"""/v1/keys on the API's real sessions (each request commits), with keys required: a key made over REST works at
once, is listed without its secret, and stops working on the request after its revocation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.auth import keys
from app.auth.principal import Role
from app.config import Settings
from app.db.engine import make_engine
from tests.integration.api.test_docs_samples import json_block_after


@pytest.fixture
def admin(fresh_db_url: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A client of the API with keys required, and the headers of an admin key granted everything."""
    settings = Settings(database_url=fresh_db_url, auth="required")
    engine = make_engine(settings, "test")
    with Session(engine) as db:
        secret = keys.create(db, settings, "root", Role.admin).secret
        db.commit()
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client, {"Authorization": f"Bearer {secret}"}
    engine.dispose()


def test_a_key_made_over_rest_works_and_is_shown_once(admin: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = admin
    body = {"name": "ci", "role": "write", "collections": ["docs-*"], "expires": "1h", "rate_limit": 120}

    made = client.post("/v1/keys", json=body, headers=headers)

    assert made.status_code == 201, made.text
    assert made.headers["Cache-Control"] == "no-store"
    created = made.json()
    secret = created.pop("key")
    assert secret.startswith(created["prefix"])
    assert len(secret) == 46
    assert created["collections"] == ["docs-*"]
    assert created["datasets"] == ["*"]
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert timedelta(minutes=59) < expires_at - datetime.now(UTC) <= timedelta(hours=1)
    assert {k: created[k] for k in ("name", "role", "rate_limit", "revoked_at")} == {
        "name": "ci", "role": "write", "rate_limit": 120, "revoked_at": None,
    }  # fmt: skip

    as_ci = {"X-API-Key": secret}
    document = {"external_id": "a", "content": "text"}
    passes = client.post("/v1/collections/docs-a/documents", json=document, headers=as_ci)
    assert passes.json() == {"error": {"code": "not_found", "message": "no collection named 'docs-a'"}}
    assert client.get("/v1/collections/other", headers=as_ci).status_code == 404
    assert client.delete("/v1/collections/docs-a", headers=as_ci).status_code == 403  # admin only

    sample = json_block_after("rest.md", "### `/v1/keys`")
    assert isinstance(sample, dict)
    assert sample.keys() == made.json().keys()

    listed = client.get("/v1/keys", headers=headers)
    one = client.get("/v1/keys/ci", headers=headers)
    assert secret not in listed.text
    assert secret not in one.text
    assert [row["name"] for row in listed.json()] == ["root", "ci"]
    assert "hash" not in one.json()
    assert "key" not in one.json()
    assert one.json()["last_used_at"] is not None  # ci's requests above


def test_revoking_takes_effect_on_the_next_request(admin: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = admin
    secret = client.post("/v1/keys", json={"name": "temp", "role": "read"}, headers=headers).json()["key"]
    assert client.get("/v1/collections", headers={"X-API-Key": secret}).status_code == 200

    assert client.delete("/v1/keys/temp", headers=headers).status_code == 204

    assert client.get("/v1/collections", headers={"X-API-Key": secret}).status_code == 401
    assert client.delete("/v1/keys/temp", headers=headers).status_code == 404
    assert client.get("/v1/keys/temp", headers=headers).status_code == 404
    revoked = client.get("/v1/keys", params={"revoked": True}, headers=headers).json()
    assert [row["name"] for row in revoked if row["revoked_at"]] == ["temp"]
    again = client.post("/v1/keys", json={"name": "temp", "role": "read"}, headers=headers)  # the name is free
    assert again.status_code == 201


def test_a_taken_name_is_a_409(admin: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = admin

    response = client.post("/v1/keys", json={"name": "root", "role": "read"}, headers=headers)

    assert response.status_code == 409
    assert response.json()["error"]["details"] == [{"field": "body.name", "reason": "is taken"}]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires": "90 days"}, "body.expires"),
        ({"expires": "0d"}, "body.expires"),
        ({"expires": "99999w"}, "body.expires"),
        ({"collections": []}, "body.collections"),
        ({"collections": [""]}, "body.collections.0"),
        ({"datasets": ["ok", "no spaces"]}, "body.datasets.1"),
        ({"datasets": ["x" * 129]}, "body.datasets.0"),
        ({"collections": ["a'; drop"]}, "body.collections.0"),
        ({"role": "owner"}, "body.role"),
        ({"name": "-starts-with-a-dash"}, "body.name"),
        ({"rate_limit": 0}, "body.rate_limit"),
        ({"hash": "00"}, "body.hash"),
    ],
)
def test_bad_fields_are_422s_naming_them(
    admin: tuple[TestClient, dict[str, str]], body: dict[str, object], field: str
) -> None:
    client, headers = admin

    response = client.post("/v1/keys", json={"name": "k", "role": "read"} | body, headers=headers)

    assert response.status_code == 422, response.text
    assert [problem["field"] for problem in response.json()["error"]["details"]] == [field]
    assert client.get("/v1/keys/k", headers=headers).status_code == 404  # nothing half made
