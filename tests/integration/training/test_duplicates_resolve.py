"""POST /v1/datasets/{name}/duplicates/resolve: one duplicate cluster settled by hand, the dropped examples removed
as dedup removes them (tombstones for those a snapshot holds), every id checked first, and never a whole cluster."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app.db.engine import sqlalchemy_url
from app.db.models import Dataset
from app.errors import InvalidInputError
from app.training.quality import dedup
from app.training.quality.schemas import ResolveRequest
from tests.conftest import sqlalchemy_engine
from tests.factories import make_dataset
from tests.integration.training.test_dedup import add, live
from tests.schema import sql


def test_a_cluster_settled_by_hand_keeps_the_chosen_one(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    ids = add(db, dataset, ["Hello world", "hello  WORLD", "HELLO world", "something else"])
    db.execute(sql("SELECT * FROM memora.create_snapshot(:n, 's1')"), {"n": dataset.name})
    later = add(db, dataset, ["hello world "])  # not in the snapshot
    cluster = api.post(f"/v1/datasets/{dataset.name}/dedup", json={}).json()["clusters"][0]
    assert cluster["members"] == [*ids[:3], *later]

    response = api.post(
        f"/v1/datasets/{dataset.name}/duplicates/resolve", json={"keep": [ids[1]], "drop": [later[0], ids[0], ids[2]]}
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"kept": [ids[1]], "dropped": [later[0], ids[0], ids[2]], "tombstoned": 2, "deleted": 1}
    assert live(db, dataset) == {ids[1], ids[3]}
    frozen = api.get(f"/v1/datasets/{dataset.name}/snapshots/s1/examples").json()["items"]
    assert [item["id"] for item in frozen] == ids
    again = api.post(f"/v1/datasets/{dataset.name}/dedup", json={}).json()
    assert again["clusters"] == []


def test_several_kept_and_any_live_examples(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    ids = add(db, dataset, ["one", "two", "three", "four"])

    response = api.post(
        f"/v1/datasets/{dataset.name}/duplicates/resolve", json={"keep": [ids[0], ids[3]], "drop": [ids[2]]}
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"kept": [ids[0], ids[3]], "dropped": [ids[2]], "tombstoned": 0, "deleted": 1}
    assert live(db, dataset) == {ids[0], ids[1], ids[3]}


def problems(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    return {d["field"]: d for d in response.json()["error"]["details"]}


def test_ids_that_are_not_live_examples_of_the_dataset_are_422_naming_them(api: TestClient, db: Session) -> None:
    dataset, elsewhere = make_dataset(db), make_dataset(db)
    ids = add(db, dataset, ["same", "same ", "SAME"])
    foreign = add(db, elsewhere, ["same"])
    assert api.delete(f"/v1/datasets/{dataset.name}/examples/{ids[2]}").status_code == 204
    url = f"/v1/datasets/{dataset.name}/duplicates/resolve"

    found = problems(api.post(url, json={"keep": [ids[2]], "drop": [ids[1], foreign[0], 10**15]}))

    assert found["body.keep"]["ids"] == [ids[2]]
    assert found["body.drop"]["ids"] == [foreign[0], 10**15]
    assert found["body.drop"]["reason"] == f"not live examples of dataset {dataset.name!r}: {foreign[0]}, {10**15}"
    assert live(db, dataset) == {ids[0], ids[1]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"keep": [], "drop": ["A", "B"]}, "body.keep"),
        ({"keep": ["A"], "drop": []}, "body.drop"),
        ({"keep": ["A"]}, "body.drop"),
        ({"drop": ["B"]}, "body.keep"),
        ({"keep": ["A"], "drop": ["B", "B"]}, "body.drop"),
        ({"keep": ["A", "A"], "drop": ["B"]}, "body.keep"),
        ({"keep": ["A"], "drop": ["A", "B"]}, "body.drop"),
        ({"keep": ["A"], "drop": [2**63]}, "body.drop.0"),
        ({"keep": ["A"], "drop": ["x"]}, "body.drop.0"),
        ({"keep": ["A"], "drop": ["B"], "members": ["A"]}, "body.members"),
    ],
)
def test_bad_requests_are_422_and_change_nothing(
    api: TestClient, db: Session, body: dict[str, Any], field: str
) -> None:
    dataset = make_dataset(db)
    named = dict(zip("AB", add(db, dataset, ["same", "same "]), strict=True))
    sent = {k: [named.get(i, i) for i in v] for k, v in body.items()}

    response = api.post(f"/v1/datasets/{dataset.name}/duplicates/resolve", json=sent)

    assert field in problems(response), response.text
    assert live(db, dataset) == set(named.values())


def test_unknown_dataset_is_404(api: TestClient) -> None:
    response = api.post("/v1/datasets/nope/duplicates/resolve", json={"keep": [1], "drop": [2]})

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no dataset named 'nope'"


def test_two_requests_settling_a_cluster_both_ways_never_drop_it_whole(fresh_db_url: str) -> None:
    """The second waits for the first's locks, then finds the example it meant to keep gone: its 422."""
    engine = sqlalchemy_engine(fresh_db_url)
    with Session(engine) as setup:
        dataset = make_dataset(setup)
        a, b = add(setup, dataset, ["twin", "TWIN"])
        name, dataset_id = dataset.name, dataset.id
        setup.commit()
    outcome: dict[str, Any] = {}

    def other_way() -> None:
        with Session(engine) as db:
            try:
                dedup.resolve(db, name, ResolveRequest(keep=[b], drop=[a]))
                db.commit()
                outcome["done"] = True
            except InvalidInputError as exc:
                outcome["error"] = exc

    with Session(engine) as first:
        dedup.resolve(first, name, ResolveRequest(keep=[a], drop=[b]))
        second = threading.Thread(target=other_way)
        second.start()
        _wait_for_a_lock_wait(fresh_db_url)
        first.commit()
    second.join(timeout=30)

    assert "done" not in outcome
    assert [p["field"] for p in outcome["error"].problems] == ["body.keep"]
    with Session(engine) as db:
        assert live(db, db.get_one(Dataset, dataset_id)) == {a}
    engine.dispose()


def _wait_for_a_lock_wait(url: str) -> None:
    watcher = create_engine(sqlalchemy_url(url))
    try:
        for _ in range(300):
            with watcher.connect() as conn:
                waiting = conn.exec_driver_sql("SELECT count(*) FROM pg_locks WHERE NOT granted").scalar()
            if waiting:
                return
            time.sleep(0.05)
        raise AssertionError("the second request never waited for the first")
    finally:
        watcher.dispose()
