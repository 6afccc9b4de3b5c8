"""The access check's behaviours beyond the table: where the key is read from, the messages, open mode, names in
bodies and query parameters, the lists a narrowed key sees, and /healthz for a caller without a key."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.principal import Role
from app.db.models import ApiKey, Collection
from app.db.repository import missing
from app.training.finetune.repository import no_job
from tests.integration.auth.conftest import COLLECTION, DATASET, OTHER_COLLECTION, OTHER_DATASET, Seeded


@pytest.fixture(scope="module")
def narrow(seeded: Seeded) -> str:
    """A read key granted collection kb alone, and datasets other-*."""
    return seeded.add_key("narrow", Role.read, collections=[COLLECTION], datasets=["other-*"])


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_the_key_is_read_from_either_header(keyed: TestClient, seeded: Seeded) -> None:
    secret = seeded.secrets["read"]

    assert keyed.get("/v1/collections", headers={"X-API-Key": secret}).status_code == 200
    assert keyed.get("/v1/collections", headers={"Authorization": f"bearer  {secret} "}).status_code == 200
    assert keyed.get("/v1/collections", headers={"Authorization": secret}).status_code == 401  # no scheme
    both = {"Authorization": f"Bearer {secret}", "X-API-Key": secret}
    assert keyed.get("/v1/collections", headers=both).status_code == 200


def test_two_different_keys_are_refused(keyed: TestClient, seeded: Seeded) -> None:
    headers = {"Authorization": f"Bearer {seeded.secrets['read']}", "X-API-Key": seeded.secrets["admin"]}
    response = keyed.get("/v1/collections", headers=headers)

    assert response.status_code == 401
    assert "two different API keys" in response.json()["error"]["message"]


def test_401s_say_how_to_send_a_key(keyed: TestClient, seeded: Seeded) -> None:
    missing_key = keyed.get("/v1/collections")
    bad_key = keyed.get("/v1/collections", headers=bearer("mk_" + "x" * 43))
    revoked = keyed.get("/v1/collections", headers=bearer(seeded.secrets["revoked"]))

    assert missing_key.status_code == bad_key.status_code == revoked.status_code == 401
    assert missing_key.headers["WWW-Authenticate"] == 'Bearer realm="memora"'
    assert "Authorization: Bearer <key>" in missing_key.json()["error"]["message"]
    assert bad_key.json() == revoked.json()  # unknown and revoked look alike
    assert bad_key.json()["error"]["code"] == "unauthorized"


def test_a_403_names_the_role_needed_and_the_keys(keyed: TestClient, seeded: Seeded) -> None:
    response = keyed.delete(f"/v1/collections/{COLLECTION}", headers=bearer(seeded.secrets["write"]))

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["message"] == "this route needs a key of role admin or above; this key's role is write"
    assert error["details"] == {"needed": "admin", "role": "write"}


def test_keys_need_a_key_granted_everything(keyed: TestClient, seeded: Seeded) -> None:
    response = keyed.get("/v1/keys", headers=bearer(seeded.secrets["other"]))

    assert response.status_code == 403
    assert "granted every collection and every dataset" in response.json()["error"]["message"]


def test_open_mode_answers_without_a_key_and_refuses_a_bad_one(open_api: TestClient, seeded: Seeded) -> None:
    assert open_api.get("/v1/collections").status_code == 200
    assert open_api.get("/v1/keys").status_code == 200  # the keyless caller of an open server is an admin
    assert open_api.get("/v1/collections", headers={"Authorization": "Basic dXNlcjpwdw=="}).status_code == 200

    bad = open_api.get("/v1/collections", headers=bearer("mk_" + "x" * 43))
    expired = open_api.get("/healthz", headers={"X-API-Key": seeded.secrets["expired"]})

    assert bad.status_code == expired.status_code == 401
    assert bad.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_key_sent_to_an_open_server_is_that_key(open_api: TestClient, narrow: str) -> None:
    assert [c["name"] for c in open_api.get("/v1/collections", headers=bearer(narrow)).json()] == [COLLECTION]
    assert open_api.post("/v1/datasets", json={"name": "x"}, headers=bearer(narrow)).status_code == 403


def test_lists_hold_only_what_the_key_is_granted(keyed: TestClient, seeded: Seeded, narrow: str) -> None:
    def names(path: str, secret: str) -> list[str]:
        response = keyed.get(path, headers=bearer(secret))
        assert response.status_code == 200, response.text
        return [row["name"] for row in response.json()]

    assert names("/v1/collections", narrow) == [COLLECTION]
    assert names("/v1/datasets", narrow) == [OTHER_DATASET]
    assert names("/v1/collections", seeded.secrets["read"]) == [COLLECTION, OTHER_COLLECTION]
    assert names("/v1/datasets", seeded.secrets["other"]) == [OTHER_DATASET]


def test_fine_tuning_jobs_of_datasets_not_granted_are_not_there(keyed: TestClient, seeded: Seeded, narrow: str) -> None:
    jobs = keyed.get("/v1/finetune/jobs", headers=bearer(narrow)).json()
    of_train = keyed.get("/v1/finetune/jobs", params={"dataset": DATASET}, headers=bearer(narrow))
    of_nothing = keyed.get("/v1/finetune/jobs", params={"dataset": "ghost"}, headers=bearer(narrow))
    by_id = keyed.get(f"/v1/finetune/jobs/{seeded.job_id}", headers=bearer(narrow))
    by_provider_id = keyed.get("/v1/finetune/jobs/ftjob-1", headers=bearer(narrow))
    everything = keyed.get("/v1/finetune/jobs", headers=bearer(seeded.secrets["read"])).json()

    assert [job["dataset"] for job in jobs] == [OTHER_DATASET]
    assert of_train.json() == of_nothing.json() == []
    assert by_id.status_code == by_provider_id.status_code == 404
    assert by_id.json() == no_job(str(seeded.job_id)).to_dict()
    assert by_provider_id.json() == no_job("ftjob-1").to_dict()
    assert sorted(job["dataset"] for job in everything) == sorted([DATASET, OTHER_DATASET])


def test_status_counts_the_granted_collections_alone(keyed: TestClient, seeded: Seeded, narrow: str) -> None:
    mine = keyed.get("/v1/status", headers=bearer(narrow)).json()
    everything = keyed.get("/v1/status", headers=bearer(seeded.secrets["read"])).json()

    assert [c["collection"] for c in mine["collections"]] == [COLLECTION]
    assert [c["collection"] for c in everything["collections"]] == [COLLECTION, OTHER_COLLECTION]
    assert mine["queue"]["ready"] == 1
    assert everything["queue"]["ready"] == 2


def test_creating_a_name_not_granted_is_a_403(keyed: TestClient, seeded: Seeded) -> None:
    admin_of_others = bearer(seeded.secrets["other"])
    body = {"name": "team-b", "embedding_provider": "hashing", "dimensions": 8}

    refused = keyed.post("/v1/collections", json=body, headers=admin_of_others)
    taken = keyed.post("/v1/collections", json=body | {"name": COLLECTION}, headers=admin_of_others)
    granted = keyed.post("/v1/collections", json=body | {"name": "other-b"}, headers=admin_of_others)
    dataset = keyed.post("/v1/datasets", json={"name": "ds", "task": "classification"}, headers=admin_of_others)

    assert refused.status_code == taken.status_code == dataset.status_code == 403
    assert refused.json()["error"]["details"] == [{"field": "body.name", "reason": "not granted to this key"}]
    assert "taken" not in taken.text
    assert "exists" not in taken.text
    assert granted.status_code == 201


def test_an_export_mining_a_collection_not_granted_is_its_404(keyed: TestClient, seeded: Seeded) -> None:
    granted_the_dataset_only = bearer(seeded.add_key("miner", Role.read, collections=["nothing"]))
    params = {"format": "triplets", "negatives": 1}

    hidden = keyed.get(f"/v1/datasets/{DATASET}/export", params=params | {"collection": COLLECTION},
                       headers=granted_the_dataset_only)  # fmt: skip
    absent = keyed.get(f"/v1/datasets/{DATASET}/export", params=params | {"collection": "ghost"},
                       headers=bearer(seeded.secrets["read"]))  # fmt: skip

    assert hidden.status_code == absent.status_code == 404
    assert hidden.json() == missing(Collection, COLLECTION).to_dict()
    assert absent.json() == missing(Collection, "ghost").to_dict()


def test_healthz_shows_a_caller_without_a_key_its_status_alone(
    keyed: TestClient, open_api: TestClient, seeded: Seeded
) -> None:
    anonymous = keyed.get("/healthz")
    with_key = keyed.get("/healthz", headers=bearer(seeded.secrets["read"]))
    on_open_server = open_api.get("/healthz")

    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "ok"}
    assert with_key.json().keys() == on_open_server.json().keys() == {"status", "version", "database"}
    assert with_key.json()["database"]["reachable"] is True
    schema = keyed.get("/openapi.json").json()["components"]["schemas"]["Health"]
    assert schema["required"] == ["status"]


def test_last_used_is_kept_when_the_request_fails(keyed: TestClient, seeded: Seeded) -> None:
    secret = seeded.add_key("used-once", Role.read)

    response = keyed.get("/v1/collections/ghost", headers=bearer(secret))

    assert response.status_code == 404
    with Session(seeded.engine) as db:
        used = db.scalar(select(ApiKey.last_used_at).where(ApiKey.name == "used-once"))
    assert used is not None


@pytest.mark.parametrize("caller", ["no key", "bad key"])
def test_a_body_that_is_not_json_is_still_a_401_without_a_good_key(
    keyed: TestClient, seeded: Seeded, caller: str
) -> None:
    """FastAPI parses a body before it runs a route's dependencies; Identify settles the key first, so a caller
    without a good key learns nothing from the route, not even that its body is malformed."""
    headers = {"content-type": "application/json"} | ({} if caller == "no key" else bearer("mk_" + "x" * 43))
    response = keyed.post(f"/v1/collections/{COLLECTION}/search", content=b'{"query": ', headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="memora"'
    with_key = keyed.post(
        f"/v1/collections/{COLLECTION}/search",
        content=b'{"query": ',
        headers={"content-type": "application/json"} | bearer(seeded.secrets["read"]),
    )
    assert with_key.status_code == 422  # a good key gets the body's own error


def test_an_unknown_path_without_a_key_is_a_401_not_a_map_of_the_api(keyed: TestClient) -> None:
    assert keyed.get("/v1/no-such-thing").status_code == 401
    assert keyed.get("/healthz").status_code in (200, 503)  # routes open to all stay open
