"""What changed between two snapshots: memora.snapshot_diff_v1 as a psql user calls it, and
GET /v1/datasets/{name}/snapshots/{snapshot}/diff?against= with its counts, keyset pages, 404s and 422s."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tests.schema import sql

URL = "/v1/datasets/reviews/snapshots/v2/diff"


def add(db: Session, texts: list[str]) -> list[int]:
    """Classification examples of dataset reviews with these texts, in this order; their ids."""
    rows = db.execute(
        sql(
            "INSERT INTO memora.example (dataset_id, format, input, label) "
            "SELECT d.id, 'classification', jsonb_build_object('text', t), 'ham' "
            "FROM memora.dataset d, unnest(CAST(:texts AS text[])) WITH ORDINALITY AS x(t, i) "
            "WHERE d.name = 'reviews' ORDER BY i RETURNING id"
        ),
        {"texts": texts},
    ).all()
    return [row.id for row in rows]


def move(db: Session, example_id: int, split: str) -> None:
    db.execute(sql("UPDATE memora.example SET split = :s WHERE id = :i"), {"s": split, "i": example_id})


def split_of(db: Session, example_id: int) -> str:
    return str(db.execute(sql("SELECT split FROM memora.example WHERE id = :i"), {"i": example_id}).scalar_one())


def other(split: str) -> str:
    return "test" if split != "test" else "train"


@pytest.fixture
def change(api: TestClient, db: Session) -> dict[str, Any]:
    """Snapshots v1 and v2 of dataset reviews: between them one example deleted, two added, one moved."""
    assert api.post("/v1/datasets", json={"name": "reviews", "task": "classification"}).status_code == 201
    ids = add(db, [f"review number {i}" for i in range(10)])
    assert api.post("/v1/datasets/reviews/snapshots", json={"name": "v1"}).status_code == 201
    assert api.delete(f"/v1/datasets/reviews/examples/{ids[2]}").status_code == 204
    added = add(db, ["a new review", "x" * 300])
    before = split_of(db, ids[5])
    move(db, ids[5], other(before))
    assert api.post("/v1/datasets/reviews/snapshots", json={"name": "v2"}).status_code == 201
    return {"ids": ids, "added": added, "removed": ids[2], "moved": ids[5], "split_before": before}


def items(api: TestClient, url: str = URL, **params: Any) -> list[dict[str, Any]]:
    """Every item of the diff, following next_cursor."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = api.get(url, params=params | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        found += response.json()["items"]
        if (cursor := response.json()["next_cursor"]) is None:
            return found


def test_the_diff_counts_and_lists_added_removed_and_moved_examples(
    api: TestClient, db: Session, change: dict[str, Any]
) -> None:
    response = api.get(URL, params={"against": "v1"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["snapshot"], body["against"], body["next_cursor"]) == ("v2", "v1", None)
    assert body["counts"] == {"added": 2, "removed": 1, "split_changed": 1}
    assert [i["example_id"] for i in body["items"]] == sorted([change["removed"], change["moved"], *change["added"]])
    rows = {i["example_id"]: i for i in body["items"]}
    assert rows[change["removed"]] == {
        "example_id": change["removed"], "change": "removed", "split_before": split_of(db, change["removed"]),
        "split_after": None, "seq": 2, "format": "classification", "label": "ham", "labels": None,
        "text": "review number 2", "live": False,
    }  # fmt: skip
    moved = rows[change["moved"]]
    assert (moved["change"], moved["split_before"], moved["split_after"], moved["live"]) == (
        "split_changed", change["split_before"], other(change["split_before"]), True,
    )  # fmt: skip
    for example_id in change["added"]:
        added = rows[example_id]
        assert (added["change"], added["split_before"]) == ("added", None)
        assert added["split_after"] == split_of(db, example_id)
    assert rows[change["added"][1]]["text"] == "x" * 200


def test_the_other_way_round_added_and_removed_swap(api: TestClient, change: dict[str, Any]) -> None:
    forward = {i["example_id"]: i for i in items(api, against="v1")}

    backward = items(api, "/v1/datasets/reviews/snapshots/v1/diff", against="v2")

    swap = {"added": "removed", "removed": "added", "split_changed": "split_changed"}
    assert {i["example_id"]: (swap[i["change"]], i["split_after"], i["split_before"]) for i in backward} == {
        k: (v["change"], v["split_before"], v["split_after"]) for k, v in forward.items()
    }
    assert items(api, "/v1/datasets/reviews/snapshots/v1/diff", against="v1") == []


def test_keyset_pages_and_the_change_filter(api: TestClient, change: dict[str, Any]) -> None:
    whole = items(api, against="v1")

    paged = items(api, against="v1", limit=1)
    first = api.get(URL, params={"against": "v1", "limit": 3}).json()

    assert paged == whole
    assert (len(first["items"]), first["next_cursor"]) == (3, str(first["items"][-1]["example_id"]))
    added = api.get(URL, params={"against": "v1", "change": "added"}).json()
    assert [i["example_id"] for i in added["items"]] == change["added"]
    assert added["counts"] == {"added": 2, "removed": 1, "split_changed": 1}
    assert [i["example_id"] for i in items(api, against="v1", change="split_changed")] == [change["moved"]]


def test_unknown_names_are_404_naming_them(api: TestClient, change: dict[str, Any]) -> None:
    against = api.get(URL, params={"against": "v9"})
    snapshot = api.get("/v1/datasets/reviews/snapshots/v9/diff", params={"against": "v1"})
    dataset = api.get("/v1/datasets/nope/snapshots/v2/diff", params={"against": "v1"})

    assert against.status_code == snapshot.status_code == dataset.status_code == 404
    assert against.json()["error"]["message"] == "dataset 'reviews' has no snapshot named 'v9'"
    assert snapshot.json()["error"]["message"] == "dataset 'reviews' has no snapshot named 'v9'"
    assert dataset.json()["error"]["message"] == "no dataset named 'nope'"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "query.against"),
        ({"against": ""}, "query.against"),
        ({"against": "v1", "change": "renamed"}, "query.change"),
        ({"against": "v1", "limit": 0}, "query.limit"),
        ({"against": "v1", "cursor": "later"}, "cursor"),
        ({"against": "v1", "cursor": str(2**63)}, "cursor"),
    ],
)
def test_bad_parameters_are_422_naming_them(
    api: TestClient, change: dict[str, Any], params: dict[str, Any], field: str
) -> None:
    response = api.get(URL, params=params)

    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]]


def test_the_sql_function_as_a_psql_user_calls_it(db: Session, change: dict[str, Any]) -> None:
    rows = db.execute(sql("SELECT * FROM memora.snapshot_diff_v1('reviews', 'v1', 'v2')")).all()

    assert [r.example_id for r in rows] == sorted(r.example_id for r in rows)
    assert {r.example_id: r.change for r in rows} == {
        change["removed"]: "removed", change["moved"]: "split_changed",
        change["added"][0]: "added", change["added"][1]: "added",
    }  # fmt: skip
    for args, detail, message in [
        ("'nope', 'v1', 'v2'", "dataset", "dataset 'nope' does not exist"),
        ("'reviews', 'v0', 'v2'", "a", "dataset 'reviews' has no snapshot 'v0'"),
        ("'reviews', 'v1', 'v3'", "b", "dataset 'reviews' has no snapshot 'v3'"),
    ]:
        with pytest.raises(DBAPIError) as raised, db.begin_nested():
            db.execute(sql(f"SELECT * FROM memora.snapshot_diff_v1({args})"))
        error = raised.value.orig
        assert isinstance(error, psycopg.errors.NoDataFound)
        assert (error.diag.message_detail, error.diag.message_primary) == (detail, message)
