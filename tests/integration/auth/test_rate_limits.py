"""A key past its requests per minute gets a 429 with Retry-After, through the access check every route runs; a
key without a limit of its own takes MEMORA_RATE_LIMIT_PER_MINUTE, and a keyless caller of an open server none."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.auth.principal import Role
from tests.integration.auth.conftest import Seeded, app_for


def test_a_key_past_its_limit_gets_429_with_retry_after(seeded: Seeded) -> None:
    secret = seeded.add_key("limited", Role.read, rate_limit=2)
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(app_for(seeded, "required")) as client:
        assert [client.get("/v1/collections", headers=headers).status_code for _ in range(2)] == [200, 200]
        refused = client.get("/v1/collections", headers=headers)
        other_key = client.get("/v1/collections", headers=seeded.headers("read"))

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "'limited'" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    assert other_key.status_code == 200  # buckets are per key


def test_the_server_wide_limit_applies_to_keys_not_to_an_open_server_without_one(seeded: Seeded) -> None:
    limited = seeded.settings.model_copy(update={"rate_limit_per_minute": 1})
    with TestClient(app_for(seeded, "auto", settings=limited)) as client:
        keyed = [client.get("/v1/collections", headers=seeded.headers("write")).status_code for _ in range(2)]
        keyless = [client.get("/v1/collections").status_code for _ in range(3)]

    assert keyed == [200, 429]
    assert keyless == [200, 200, 200]
