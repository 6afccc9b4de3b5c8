"""GET /v1/collections/{name}/evaluations[/{run}] on stored runs, and what the table itself guarantees."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.models import Collection, EvalRun
from tests.factories import eval_run_summary, make_collection, make_eval_run


def test_runs_are_listed_newest_first_a_page_at_a_time_with_each_mode_s_metrics(api: TestClient, db: Session) -> None:
    collection, other = make_collection(db), make_collection(db)
    runs = [make_eval_run(db, collection, summary=eval_run_summary({"text": i / 10})) for i in range(5)]
    make_eval_run(db, other)
    url = f"/v1/collections/{collection.name}/evaluations"

    first = api.get(url, params={"limit": 2}).json()
    second = api.get(url, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    last = api.get(url, params={"limit": 2, "cursor": second["next_cursor"]}).json()
    whole = api.get(url).json()

    newest_first = [run.id for run in reversed(runs)]
    assert [item["id"] for page in (first, second, last) for item in page["items"]] == newest_first
    assert last["next_cursor"] is None
    assert [item["id"] for item in whole["items"]] == newest_first
    assert whole["next_cursor"] is None
    item = first["items"][0]
    assert set(item) == {"id", "created_at", "params", "modes"}  # the metrics, not the curves and the sweep
    assert item["modes"] == runs[-1].summary["modes"]
    assert item["params"] == runs[-1].params


def test_one_run_is_its_whole_summary(api: TestClient, db: Session) -> None:
    collection = make_collection(db)
    run = make_eval_run(db, collection)

    response = api.get(f"/v1/collections/{collection.name}/evaluations/{run.id}")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["params"], body["summary"]) == (run.id, run.params, run.summary)
    assert len(body["summary"]["recall_curve"]["hybrid"]) == 100


def test_a_missing_run_is_a_404_naming_it_and_its_collection(api: TestClient, db: Session) -> None:
    collection, other = make_collection(db), make_collection(db)
    elsewhere = make_eval_run(db, other)

    missing = api.get(f"/v1/collections/{collection.name}/evaluations/{elsewhere.id}")
    no_collection = api.get(f"/v1/collections/nowhere/evaluations/{elsewhere.id}")
    not_a_number = api.get(f"/v1/collections/{collection.name}/evaluations/latest")
    bad_cursor = api.get(f"/v1/collections/{collection.name}/evaluations", params={"cursor": "not-ours"})

    assert missing.status_code == 404
    message = f"collection {collection.name!r} has no evaluation run {elsewhere.id}"
    assert missing.json() == {"error": {"code": "not_found", "message": message}}
    assert no_collection.status_code == 404
    assert no_collection.json()["error"]["message"] == "no collection named 'nowhere'"
    assert not_a_number.status_code == 422
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["error"]["details"][0]["field"] == "cursor"


def test_a_collection_without_runs_lists_none(api: TestClient, db: Session) -> None:
    collection = make_collection(db)

    assert api.get(f"/v1/collections/{collection.name}/evaluations").json() == {"items": [], "next_cursor": None}


def test_deleting_a_collection_deletes_its_runs(db: Session) -> None:
    collection, other = make_collection(db), make_collection(db)
    run, kept = make_eval_run(db, collection), make_eval_run(db, other)

    db.execute(delete(Collection).where(Collection.id == collection.id))

    assert db.scalars(select(EvalRun.id).where(EvalRun.id.in_([run.id, kept.id]))).all() == [kept.id]


@pytest.mark.parametrize("column", ["params", "summary"])
def test_params_and_summary_are_json_objects(db: Session, column: str) -> None:
    with pytest.raises(IntegrityError, match=f"ck_eval_run_{column}_object"):
        make_eval_run(db, make_collection(db), **{column: [1, 2]})
