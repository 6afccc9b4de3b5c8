"""Snapshots over HTTP, in SQL and on the command line: frozen content and splits, tombstones, 409s and 422s."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import cli
from app.errors import ConflictError
from app.training.snapshots import service as snapshots
from tests.schema import q, sql


def add_examples(db: Session, dataset: str, start: int, stop: int) -> None:
    """Classification examples 'example START' .. 'example STOP-1', written as a psql user writes them."""
    db.execute(
        sql(
            "INSERT INTO memora.example (dataset_id, format, input, label) "
            "SELECT d.id, 'classification', jsonb_build_object('text', 'example ' || g), "
            "CASE WHEN mod(g, 3) = 0 THEN 'spam' ELSE 'ham' END "
            "FROM memora.dataset d, generate_series(:start, :stop - 1) g WHERE d.name = :dataset ORDER BY g"
        ),
        {"dataset": dataset, "start": start, "stop": stop},
    )


def pages(api: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paged listing, following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        body = api.get(path, params=params | ({"cursor": cursor} if cursor else {})).json()
        items += body["items"]
        if (cursor := body["next_cursor"]) is None:
            return items


def epoch(api: TestClient, dataset: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of one epoch of batches."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = api.get(f"/v1/datasets/{dataset}/batches", params=params | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        if (cursor := response.json()["next_cursor"]) is None:
            return items


@pytest.fixture
def dataset(api: TestClient, db: Session) -> str:
    assert api.post("/v1/datasets", json={"name": "reviews", "task": "classification"}).status_code == 201
    add_examples(db, "reviews", 0, 40)
    return "reviews"


def test_a_snapshot_freezes_the_examples_and_their_splits(api: TestClient, dataset: str) -> None:
    live = pages(api, f"/v1/datasets/{dataset}/examples")

    created = api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1", "description": "first"})

    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["description"], body["examples"]) == ("v1", "first", 40)
    live_splits: dict[str, int] = {}
    for item in live:
        live_splits[item["split"]] = live_splits.get(item["split"], 0) + 1
    assert body["split_counts"] == live_splits
    assert body["created_at"]
    assert [s["name"] for s in api.get(f"/v1/datasets/{dataset}/snapshots").json()] == ["v1"]
    assert api.get(f"/v1/datasets/{dataset}/snapshots/v1").json() == body
    assert api.get(f"/v1/datasets/{dataset}").json()["snapshots"] == 1
    frozen = pages(api, f"/v1/datasets/{dataset}/snapshots/v1/examples", limit=7)
    assert [(i["id"], i["split"], i["record"]) for i in frozen] == [(i["id"], i["split"], i["record"]) for i in live]
    assert [i["seq"] for i in frozen] == list(range(40))
    assert frozen[3]["record"] == {"text": "example 3", "label": "spam"}


def test_the_snapshot_reads_the_same_rows_after_the_live_dataset_changes(
    api: TestClient, db: Session, dataset: str
) -> None:
    api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1"})
    path = f"/v1/datasets/{dataset}/snapshots/v1/examples"
    before_pages = pages(api, path)
    before_train = pages(api, path, split="train")
    before_batches = epoch(api, dataset, snapshot="v1", size=6, fields="id,seq,split,record")
    before_shuffled = epoch(api, dataset, snapshot="v1", size=6, shuffle_seed=3, split="train")
    deleted = before_pages[5]["id"]

    assert api.delete(f"/v1/datasets/{dataset}/examples/{deleted}").status_code == 204
    db.execute(
        sql(
            "UPDATE memora.example SET split = CASE split WHEN 'train' THEN 'test' ELSE 'train' END "
            "WHERE dataset_id = (SELECT id FROM memora.dataset WHERE name = :d)"
        ),
        {"d": dataset},
    )
    add_examples(db, dataset, 40, 60)

    live = pages(api, f"/v1/datasets/{dataset}/examples")
    assert len(live) == 59
    assert deleted not in {i["id"] for i in live}
    moved = {i["id"]: i["split"] for i in live}
    assert all(moved[i["id"]] != i["split"] for i in before_pages if i["id"] in moved)
    assert pages(api, path) == before_pages
    assert pages(api, path, split="train") == before_train
    assert epoch(api, dataset, snapshot="v1", size=6, fields="id,seq,split,record") == before_batches
    assert epoch(api, dataset, snapshot="v1", size=6, shuffle_seed=3, split="train") == before_shuffled
    assert api.get(f"{path}/{deleted}").json()["record"] == before_pages[5]["record"]
    assert api.get(f"/v1/datasets/{dataset}/snapshots/v1").json()["examples"] == 40


def test_a_deleted_example_is_a_tombstone_until_its_last_snapshot_goes(
    api: TestClient, db: Session, dataset: str
) -> None:
    api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1"})
    api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v2"})
    held = pages(api, f"/v1/datasets/{dataset}/examples")[0]["id"]
    add_examples(db, dataset, 40, 41)
    unheld = pages(api, f"/v1/datasets/{dataset}/examples")[-1]["id"]

    def stored(example_id: int) -> Any:
        return db.execute(sql("SELECT deleted_at FROM memora.example WHERE id = :id"), {"id": example_id}).all()

    assert api.delete(f"/v1/datasets/{dataset}/examples/{held}").status_code == 204
    assert api.delete(f"/v1/datasets/{dataset}/examples/{unheld}").status_code == 204

    assert stored(unheld) == []  # no snapshot held it: deleted outright
    assert stored(held)[0].deleted_at is not None
    assert api.get(f"/v1/datasets/{dataset}/examples/{held}").status_code == 404
    assert api.get(f"/v1/datasets/{dataset}").json()["examples"] == 39
    assert api.get(f"/v1/datasets/{dataset}/snapshots/v1/examples/{held}").status_code == 200

    assert api.delete(f"/v1/datasets/{dataset}/snapshots/v1").status_code == 204
    assert stored(held)[0].deleted_at is not None  # v2 still holds it
    assert api.get(f"/v1/datasets/{dataset}/snapshots/v2/examples/{held}").json()["id"] == held
    assert api.get(f"/v1/datasets/{dataset}/snapshots/v1").status_code == 404

    assert api.delete(f"/v1/datasets/{dataset}/snapshots/v2").status_code == 204
    assert stored(held) == []
    assert api.get(f"/v1/datasets/{dataset}").json()["examples"] == 39


def test_a_taken_name_is_a_409_and_a_bad_one_a_422(api: TestClient, dataset: str) -> None:
    assert api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1"}).status_code == 201

    taken = api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1"})
    bad = api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "no spaces"})
    missing = api.post(f"/v1/datasets/{dataset}/snapshots", json={})
    extra = api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v2", "examples": [1]})
    nul = api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v3", "description": "a\u0000b"})

    assert taken.status_code == 409
    assert taken.json()["error"]["details"] == [{"field": "body.name", "reason": "is taken"}]
    assert "v1" in taken.json()["error"]["message"]
    for response in (bad, missing):
        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["field"] == "body.name"
    assert extra.status_code == 422
    assert nul.status_code == 422
    assert nul.json()["error"]["details"][0]["field"] == "body.description"
    # The failed attempts left the dataset as it was, and the name is free in another dataset.
    assert [s["name"] for s in api.get(f"/v1/datasets/{dataset}/snapshots").json()] == ["v1"]
    api.post("/v1/datasets", json={"name": "other", "task": "classification"})
    assert api.post("/v1/datasets/other/snapshots", json={"name": "v1"}).json()["examples"] == 0


def test_unknown_datasets_and_snapshots_are_404(api: TestClient, dataset: str) -> None:
    assert api.post("/v1/datasets/nope/snapshots", json={"name": "v1"}).status_code == 404
    assert api.get("/v1/datasets/nope/snapshots").status_code == 404
    for path in ("", "/examples", "/examples/1"):
        response = api.get(f"/v1/datasets/{dataset}/snapshots/nope{path}")
        assert response.status_code == 404, path
        assert "nope" in response.json()["error"]["message"]
    assert api.delete(f"/v1/datasets/{dataset}/snapshots/nope").status_code == 404
    assert api.get(f"/v1/datasets/{dataset}/batches", params={"snapshot": "nope"}).status_code == 404
    api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1"})
    assert api.get(f"/v1/datasets/{dataset}/snapshots/v1/examples/999999999").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/examples"),
        ("POST", "/import"),
        ("DELETE", "/examples/{id}"),
        ("PATCH", "/examples/{id}"),
        ("PUT", "/examples/{id}"),
        ("PATCH", ""),
        ("PUT", ""),
    ],
)
def test_writes_through_a_snapshot_are_a_409(api: TestClient, dataset: str, method: str, path: str) -> None:
    api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1"})
    first = pages(api, f"/v1/datasets/{dataset}/snapshots/v1/examples")[0]["id"]
    url = f"/v1/datasets/{dataset}/snapshots/v1{path.format(id=first)}"

    response = api.request(method, url, json={"text": "new", "label": "spam"})
    unknown = api.request(method, url.replace("/v1/datasets/reviews/snapshots/v1", "/v1/datasets/reviews/snapshots/v9"))

    assert response.status_code == 409, response.text
    assert "immutable" in response.json()["error"]["message"]
    assert unknown.status_code == 404
    assert len(pages(api, f"/v1/datasets/{dataset}/snapshots/v1/examples")) == 40


def test_sql_refuses_to_change_a_snapshots_rows(db: Session, api: TestClient, dataset: str) -> None:
    api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1"})
    change = "UPDATE memora.snapshot_example SET split = 'test'"
    remove = "DELETE FROM memora.snapshot_example WHERE seq = 0"

    for statement in (change, remove):
        with pytest.raises(DBAPIError) as raised, db.begin_nested():
            db.execute(sql(statement))
        assert isinstance(raised.value.orig, psycopg.errors.ObjectNotInPrerequisiteState)
        with pytest.raises(ConflictError, match="immutable"), snapshots.frozen_errors(), db.begin_nested():
            db.execute(sql(statement))
    assert api.get(f"/v1/datasets/{dataset}/snapshots/v1").json()["examples"] == 40


def test_memora_sql_users_make_the_same_snapshot(db: Session, api: TestClient, dataset: str) -> None:
    row = db.execute(sql("SELECT name, examples FROM memora.create_snapshot('reviews', 'from-psql')")).one()

    assert tuple(row) == ("from-psql", 40)
    assert api.get(f"/v1/datasets/{dataset}/snapshots/from-psql").json()["examples"] == 40


def test_snapshot_commands(fresh_db_url: str) -> None:
    runner = CliRunner()
    base = ["--database-url", fresh_db_url, "dataset"]
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute(q("INSERT INTO memora.dataset (name, task) VALUES ('cli', 'classification')"))
        conn.execute(
            q(
                "INSERT INTO memora.example (dataset_id, format, input, label) "
                "SELECT d.id, 'classification', jsonb_build_object('text', 't' || g), 'a' "
                "FROM memora.dataset d, generate_series(1, 5) g"
            )
        )

    created = runner.invoke(cli, [*base, "snapshot", "create", "cli", "v1", "--description", "first cut"])
    again = runner.invoke(cli, [*base, "snapshot", "create", "cli", "v1"])
    listed = runner.invoke(cli, [*base, "snapshot", "list", "cli"])
    deleted = runner.invoke(cli, [*base, "snapshot", "delete", "cli", "v1"])
    after = runner.invoke(cli, [*base, "snapshot", "list", "cli"])

    assert created.exit_code == 0, created.output
    assert "created snapshot v1 of cli: 5 examples" in created.output
    assert again.exit_code != 0
    assert isinstance(again.exception, ConflictError)
    assert listed.output.startswith("v1\t5 examples")
    assert "first cut" in listed.output
    assert deleted.exit_code == 0
    assert "deleted snapshot v1" in deleted.output
    assert after.output == ""
