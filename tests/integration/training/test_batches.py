"""GET /v1/datasets/{name}/batches: every example once per epoch, deterministic shuffles, resumable cursors."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.training.batches.cursor import Cursor
from app.training.batches.service import MAX_BATCH
from tests.schema import sql


def add_examples(db: Session, dataset: str, start: int, stop: int) -> None:
    """Classification examples 'example START' .. 'example STOP-1', written as a psql user writes them."""
    db.execute(
        sql(
            "INSERT INTO memora.example (dataset_id, format, input, label, input_ids) "
            "SELECT d.id, 'classification', jsonb_build_object('text', 'example ' || g), "
            "CASE WHEN mod(g, 3) = 0 THEN 'spam' ELSE 'ham' END, ARRAY[g, g + 1] "
            "FROM memora.dataset d, generate_series(:start, :stop - 1) g WHERE d.name = :dataset ORDER BY g"
        ),
        {"dataset": dataset, "start": start, "stop": stop},
    )


def live_ids(db: Session, dataset: str, split: str | None = None) -> list[int]:
    return list(
        db.scalars(
            sql(
                "SELECT e.id FROM memora.example e JOIN memora.dataset d ON d.id = e.dataset_id "
                "WHERE d.name = :d AND e.deleted_at IS NULL AND (CAST(:split AS text) IS NULL OR e.split = :split) "
                "ORDER BY e.seq"
            ),
            {"d": dataset, "split": split},
        )
    )


def get(api: TestClient, dataset: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"/v1/datasets/{dataset}/batches", params={k: v for k, v in params.items() if v is not None})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def epoch(api: TestClient, dataset: str, **params: Any) -> list[list[dict[str, Any]]]:
    """The batches of one epoch, following next_cursor from params' cursor (or the start)."""
    batches = []
    while True:
        body = get(api, dataset, **params)
        batches.append(body["items"])
        if (cursor := body["next_cursor"]) is None:
            return batches
        params["cursor"] = cursor


def ids(batches: list[list[dict[str, Any]]]) -> list[int]:
    return [item["id"] for batch in batches for item in batch]


@pytest.fixture
def dataset(api: TestClient, db: Session) -> str:
    split = {"ratios": {"train": 0.5, "validation": 0.25, "test": 0.25}}
    created = api.post("/v1/datasets", json={"name": "reviews", "task": "classification", "split": split})
    assert created.status_code == 201
    add_examples(db, "reviews", 0, 103)
    return "reviews"


@pytest.mark.parametrize("seed", [None, 0, 7])
@pytest.mark.parametrize("split", [None, "train", "test"])
def test_an_epoch_holds_every_example_once(
    api: TestClient, db: Session, dataset: str, seed: int | None, split: str | None
) -> None:
    # Gaps: an example deleted outright, and a tombstone (deleted while a snapshot holds it).
    everyone = live_ids(db, dataset)
    api.delete(f"/v1/datasets/{dataset}/examples/{everyone[10]}")
    api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1"})
    api.delete(f"/v1/datasets/{dataset}/examples/{everyone[50]}")
    expected = live_ids(db, dataset, split)

    batches = epoch(api, dataset, size=8, split=split, shuffle_seed=seed)

    assert len(expected) > 15
    assert sorted(ids(batches)) == sorted(expected)
    assert all(len(b) == 8 for b in batches[:-1])
    assert 1 <= len(batches[-1]) <= 8
    assert (ids(batches) == expected) == (seed is None)
    assert split is None or {item["split"] for batch in batches for item in batch} == {split}


@pytest.mark.parametrize("seed", [None, 5])
def test_a_snapshot_epoch_holds_every_frozen_example_once(
    api: TestClient, db: Session, dataset: str, seed: int | None
) -> None:
    api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1"})
    frozen = live_ids(db, dataset)
    frozen_train = live_ids(db, dataset, "train")
    api.delete(f"/v1/datasets/{dataset}/examples/{frozen[3]}")
    add_examples(db, dataset, 103, 120)

    everything = epoch(api, dataset, snapshot="v1", size=10, shuffle_seed=seed)
    train = epoch(api, dataset, snapshot="v1", size=10, shuffle_seed=seed, split="train")

    assert sorted(ids(everything)) == sorted(frozen)
    assert sorted(ids(train)) == sorted(frozen_train)
    assert (ids(everything) == frozen) == (seed is None)


def test_the_same_seed_gives_the_same_order_and_another_seed_another(api: TestClient, dataset: str) -> None:
    first = ids(epoch(api, dataset, size=10, shuffle_seed=1))
    again = ids(epoch(api, dataset, size=25, shuffle_seed=1))  # the batch size does not change the order
    second = ids(epoch(api, dataset, size=10, shuffle_seed=2))

    assert first == again
    assert sorted(first) == sorted(second)
    assert first != second
    # Not a rotation or a reversal of seq order: a shuffle.
    assert sum(a < b for a, b in itertools.pairwise(first)) not in (0, len(first) - 1)


@pytest.mark.parametrize("seed", [None, 11])
def test_resuming_from_a_cursor_equals_one_uninterrupted_pass(api: TestClient, dataset: str, seed: int | None) -> None:
    whole = ids(epoch(api, dataset, size=9, shuffle_seed=seed, split="train"))
    start = get(api, dataset, size=9, shuffle_seed=seed, split="train")
    second = get(api, dataset, size=9, shuffle_seed=seed, split="train", cursor=start["next_cursor"])
    saved = second["next_cursor"]

    # A new process with the saved cursor, and another batch size.
    rest = ids(epoch(api, dataset, size=4, shuffle_seed=seed, split="train", cursor=saved))

    assert [i["id"] for i in start["items"] + second["items"]] + rest == whole


def test_examples_added_during_an_epoch_wait_for_the_next(api: TestClient, db: Session, dataset: str) -> None:
    next_seq = "SELECT next_seq FROM memora.dataset WHERE name = 'reviews'"
    for seed in (None, 3):
        before = live_ids(db, dataset)
        n = db.scalar(sql(next_seq))
        first = get(api, dataset, size=50, shuffle_seed=seed)
        late = [{"text": f"late {seed} {i}", "label": "ham"} for i in range(10)]
        assert api.post(f"/v1/datasets/{dataset}/examples", json=late).json()["stored"] == 10

        rest = ids(epoch(api, dataset, size=50, shuffle_seed=seed, cursor=first["next_cursor"]))
        following = ids(epoch(api, dataset, size=50, shuffle_seed=seed))

        assert first["epoch"] == {"seed": seed, "examples": n}
        assert sorted([i["id"] for i in first["items"]] + rest) == sorted(before)
        assert len(live_ids(db, dataset)) == len(before) + 10
        assert sorted(following) == sorted(live_ids(db, dataset))


def test_fields_pick_what_each_item_carries(api: TestClient, db: Session, dataset: str) -> None:
    default = get(api, dataset, size=2)["items"][0]
    some = get(api, dataset, size=2, fields="seq,label,input_ids,token_count")["items"][1]
    repeated = api.get(f"/v1/datasets/{dataset}/batches?size=1&fields=id&fields=record").json()["items"][0]
    api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1"})
    frozen = get(api, dataset, size=2, snapshot="v1", fields="id,seq,split")["items"][1]
    second_split = get(api, dataset, size=2, fields="split")["items"][1]["split"]

    assert list(default) == ["id", "split", "record"]
    assert default["record"] == {"text": "example 0", "label": "spam"}
    assert some == {"seq": 1, "label": "ham", "input_ids": [1, 2], "token_count": None}
    assert list(repeated) == ["id", "record"]
    assert frozen == {"id": live_ids(db, dataset)[1], "seq": 1, "split": second_split}


def test_records_carry_their_metadata(api: TestClient, db: Session, dataset: str) -> None:
    db.execute(
        sql(
            "INSERT INTO memora.example (dataset_id, format, input, label, metadata) "
            "SELECT id, 'classification', '{\"text\": \"tagged\"}', 'ham', '{\"source\": \"web\"}' "
            "FROM memora.dataset WHERE name = 'reviews'"
        )
    )
    items = [i for b in epoch(api, dataset, size=50, shuffle_seed=2, fields="record,metadata") for i in b]

    tagged = [i for i in items if i["record"]["text"] == "tagged"]
    assert tagged == [{"record": {"text": "tagged", "label": "ham", "metadata": {"source": "web"}},
                       "metadata": {"source": "web"}}]  # fmt: skip
    assert all("metadata" not in i["record"] for i in items if i not in tagged)


def test_every_field_is_served(api: TestClient, dataset: str) -> None:
    from app.training.batches.service import FIELDS

    api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1"})
    for params in ({}, {"snapshot": "v1"}, {"shuffle_seed": 1}, {"snapshot": "v1", "shuffle_seed": 1}):
        item = get(api, dataset, size=1, fields=",".join(FIELDS), **params)["items"][0]
        assert list(item) == list(FIELDS)
        assert (item["metadata"], item["labels"], item["attention_mask"]) == ({}, None, None)


def test_the_last_batch_ends_the_epoch_without_an_empty_batch(api: TestClient, dataset: str) -> None:
    exact = epoch(api, dataset, size=103)
    api.post("/v1/datasets", json={"name": "empty", "task": "classification"})

    assert [len(b) for b in exact] == [103]
    assert [len(b) for b in epoch(api, dataset, size=MAX_BATCH, shuffle_seed=4)] == [103]
    assert get(api, "empty", size=5) == {"items": [], "next_cursor": None, "epoch": {"seed": None, "examples": 0}}
    assert get(api, "empty", size=5, shuffle_seed=1)["items"] == []


def tamper(cursor: str, edit: Any) -> str:
    """The cursor with its JSON payload edited (and its checksum left as it was)."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    payload = json.loads(raw[:-8])
    edit(payload)
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode() + raw[-8:]).decode()


def test_a_tampered_or_foreign_cursor_is_a_422(api: TestClient, dataset: str) -> None:
    api.post("/v1/datasets", json={"name": "other", "task": "classification"})
    api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1"})
    cursor = get(api, dataset, size=5, shuffle_seed=1, split="train")["next_cursor"]
    plain = get(api, dataset, size=5)["next_cursor"]
    frozen = get(api, dataset, size=5, snapshot="v1")["next_cursor"]
    position = Cursor.decode(cursor).position

    def moved(p: list[Any]) -> None:
        p[-1] = position + 1

    cases = {
        "garbage": "not-a-cursor",
        "truncated": cursor[:-3],
        "a flipped character": cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:],
        "an edited position": tamper(cursor, moved),
        "empty": "",
    }
    for case, bad in cases.items():
        response = api.get(
            f"/v1/datasets/{dataset}/batches", params={"size": 5, "shuffle_seed": 1, "split": "train", "cursor": bad}
        )
        assert response.status_code == 422, case
        assert response.json()["error"]["details"][0]["field"] == "cursor", case

    # A snapshot deleted and made again under its name is another snapshot: its old cursors do not apply.
    api.delete(f"/v1/datasets/{dataset}/snapshots/v1")
    api.post(f"/v1/datasets/{dataset}/snapshots", json={"name": "v1"})
    foreign = [
        (dataset, {"snapshot": "v1"}, frozen, "another snapshot"),
        ("other", {"shuffle_seed": 1, "split": "train"}, cursor, "another dataset"),
        (dataset, {"shuffle_seed": 2, "split": "train"}, cursor, "shuffle_seed"),
        (dataset, {"split": "train"}, cursor, "shuffle_seed"),
        (dataset, {"shuffle_seed": 1}, cursor, "split"),
        (dataset, {"snapshot": "v1"}, plain, "snapshot"),
        (dataset, {}, frozen, "snapshot"),
    ]
    for name, params, bad, reason in foreign:
        response = api.get(f"/v1/datasets/{name}/batches", params={"size": 5, "cursor": bad, **params})
        assert response.status_code == 422, (name, params)
        assert response.json()["error"]["details"][0]["field"] == "cursor"
        assert reason in response.json()["error"]["message"], response.json()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"size": 0}, "query.size"),
        ({"size": MAX_BATCH + 1}, "query.size"),
        ({"split": "dev"}, "query.split"),
        ({"shuffle_seed": -1}, "query.shuffle_seed"),
        ({"shuffle_seed": 2**63}, "query.shuffle_seed"),
        ({"fields": "id,colour"}, "fields"),
    ],
)
def test_bad_parameters_are_a_422_naming_them(
    api: TestClient, dataset: str, params: dict[str, Any], field: str
) -> None:
    response = api.get(f"/v1/datasets/{dataset}/batches", params=params)

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == field
    if field == "fields":
        assert "colour" in response.json()["error"]["message"]


def test_unknown_dataset_is_a_404(api: TestClient) -> None:
    assert api.get("/v1/datasets/nope/batches").status_code == 404


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 16, 17, 100, 1023, 1024, 1025, 4097])
def test_shuffle_positions_is_shuffle_position_for_many_positions(db: Session, n: int) -> None:
    rows = db.execute(
        sql(
            "SELECT s.i, s.x, memora.shuffle_position(s.i, :n, 9) AS one FROM memora.shuffle_positions(0, :n, :n, 9) s"
        ),
        {"n": n},
    ).all()
    part = db.execute(
        sql("SELECT i, x FROM memora.shuffle_positions(:start, 7, :n, 9)"), {"n": n, "start": n // 2}
    ).all()

    assert [r.i for r in rows] == list(range(n))
    assert all(r.x == r.one for r in rows)
    assert sorted(r.x for r in rows) == list(range(n))
    assert [tuple(r) for r in part] == [(r.i, r.x) for r in rows[n // 2 : n // 2 + 7]]
