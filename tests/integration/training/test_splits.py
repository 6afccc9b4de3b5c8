"""POST /v1/datasets/{name}/split and `memora dataset split`: deterministic, hash-keyed, optionally stratified."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.training.quality.splits import quotas
from tests.factories import make_dataset, make_example
from tests.schema import q, sql

RULE = {"ratios": {"train": 0.8, "validation": 0.1, "test": 0.1}, "seed": 7}


def add_examples(db: Session, dataset_id: int, n: int, *, label: str | None = "ham", prefix: str = "example") -> None:
    """N classification examples with distinct texts, written as a psql user would (the trigger fills the rest)."""
    db.execute(
        sql(
            "INSERT INTO memora.example (dataset_id, format, input, label) "
            "SELECT :d, 'classification', jsonb_build_object('text', :p || ' number ' || i), :label "
            "FROM generate_series(1, :n) i"
        ),
        {"d": dataset_id, "p": prefix, "n": n, "label": label},
    )


def assignment(db: Session, dataset_id: int) -> dict[int, str]:
    rows = db.execute(
        sql("SELECT id, split FROM memora.example WHERE dataset_id = :d AND deleted_at IS NULL"), {"d": dataset_id}
    )
    return {row.id: row.split for row in rows}


def test_split_is_deterministic_and_close_to_its_ratios(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    add_examples(db, dataset.id, 2000)

    first = api.post(f"/v1/datasets/{dataset.name}/split", json=RULE)
    split_once = assignment(db, dataset.id)
    again = api.post(f"/v1/datasets/{dataset.name}/split", json=RULE)

    assert first.status_code == 200, first.text
    body = first.json()
    assert body["rule"] == {**RULE, "stratified": False}
    assert body["examples"] == 2000
    assert body["by_label"] is None
    for split, share in RULE["ratios"].items():  # type: ignore[attr-defined]
        assert abs(body["counts"][split] / 2000 - share) <= 0.02, body["counts"]
    assert again.json()["changed"] == 0
    assert again.json()["counts"] == body["counts"]
    assert assignment(db, dataset.id) == split_once
    # The split is memora.split_of of the text hash under the stored rule, which new examples use too.
    mismatches = db.scalar(
        sql(
            "SELECT count(*) FROM memora.example e JOIN memora.dataset d ON d.id = e.dataset_id "
            "WHERE d.id = :d AND e.split IS DISTINCT FROM memora.split_of(e.text_hash, d.split_seed, d.split_ratios)"
        ),
        {"d": dataset.id},
    )
    assert mismatches == 0
    assert api.get(f"/v1/datasets/{dataset.name}").json()["split"] == {**RULE, "stratified": False}


def test_another_seed_gives_another_split(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    add_examples(db, dataset.id, 2000)
    api.post(f"/v1/datasets/{dataset.name}/split", json=RULE)
    before = assignment(db, dataset.id)

    response = api.post(f"/v1/datasets/{dataset.name}/split", json={**RULE, "seed": 8})

    after = assignment(db, dataset.id)
    moved = sum(before[i] != after[i] for i in before)
    assert response.json()["changed"] == moved
    # Two independent 80/10/10 splits disagree on about 1 - (0.64 + 0.01 + 0.01) = 34% of examples.
    assert 0.25 * 2000 < moved < 0.45 * 2000
    for split, share in RULE["ratios"].items():  # type: ignore[attr-defined]
        assert abs(response.json()["counts"][split] / 2000 - share) <= 0.02


def test_the_rule_is_stored_for_examples_added_later(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    add_examples(db, dataset.id, 50)
    api.post(f"/v1/datasets/{dataset.name}/split", json={"ratios": {"train": 0.5, "test": 0.5}, "seed": 3})

    add_examples(db, dataset.id, 200, prefix="later")

    later = db.execute(
        sql(
            'SELECT e.split, memora.split_of(e.text_hash, 3, \'{"train": 0.5, "validation": 0, "test": 0.5}\') '
            "AS expected FROM memora.example e WHERE e.dataset_id = :d AND e.input ->> 'text' LIKE 'later%'"
        ),
        {"d": dataset.id},
    ).all()
    assert len(later) == 200
    assert all(row.split == row.expected for row in later)
    assert {row.split for row in later} == {"train", "test"}
    # Re-running the rule moves none of them: they already sit where their hash says.
    rerun = api.post(f"/v1/datasets/{dataset.name}/split", json={"ratios": {"train": 0.5, "test": 0.5}, "seed": 3})
    assert rerun.json()["changed"] == 0


def test_exact_duplicates_share_a_split(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    add_examples(db, dataset.id, 300)
    # Same normalised text (case, runs of white space), so the same text_hash, but different content: stored twice.
    add_examples(db, dataset.id, 300, prefix="EXAMPLE ")
    pairs = sql(
        "SELECT count(*) AS pairs, count(*) FILTER (WHERE a.split <> b.split) AS apart FROM memora.example a "
        "JOIN memora.example b ON b.dataset_id = a.dataset_id AND b.text_hash = a.text_hash AND b.id > a.id "
        "WHERE a.dataset_id = :d"
    )

    for stratified in (False, True):
        response = api.post(f"/v1/datasets/{dataset.name}/split", json={**RULE, "stratified": stratified})
        assert response.status_code == 200
        counted = db.execute(pairs, {"d": dataset.id}).one()
        assert counted.pairs == 300
        assert counted.apart == 0


def test_quotas_round_by_largest_remainder_and_keep_evaluation_splits() -> None:
    ratios = {"train": 0.8, "validation": 0.1, "test": 0.1}
    assert quotas(2000, ratios) == {"train": 1600, "validation": 200, "test": 200}
    assert quotas(97, ratios) == {"train": 77, "validation": 10, "test": 10}  # remainders .6 < .7 = .7
    assert quotas(10, ratios) == {"train": 8, "validation": 1, "test": 1}
    # Too few for the shares: every split with a positive ratio still gets one when the label has enough.
    assert quotas(5, ratios) == {"train": 3, "validation": 1, "test": 1}
    assert quotas(3, ratios) == {"train": 1, "validation": 1, "test": 1}
    assert quotas(2, ratios) == {"train": 1, "validation": 0, "test": 1}
    assert quotas(1, ratios) == {"train": 1, "validation": 0, "test": 0}
    assert quotas(0, ratios) == {"train": 0, "validation": 0, "test": 0}
    assert quotas(7, {"train": 0.5, "test": 0.5}) == {"train": 4, "validation": 0, "test": 3}
    assert quotas(1, {"test": 1.0}) == {"train": 0, "validation": 0, "test": 1}


def test_stratified_gives_every_label_its_exact_share(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    sizes = {"spam": 1000, "ham": 97, "rare": 3, "single": 1}
    for label, n in sizes.items():
        add_examples(db, dataset.id, n, label=label, prefix=label)
    add_examples(db, dataset.id, 20, label=None, prefix="unlabeled")
    # Multi-label examples are grouped by their first label in sorted order.
    for i in range(10):
        make_example(db, dataset, input={"text": f"multi {i}"}, label=None, labels=["zeta", "alpha"])
    rule = {**RULE, "stratified": True}

    response = api.post(f"/v1/datasets/{dataset.name}/split", json=rule)
    split_once = assignment(db, dataset.id)
    again = api.post(f"/v1/datasets/{dataset.name}/split", json=rule)

    assert response.status_code == 200, response.text
    by_label = {row.pop("label"): row for row in response.json()["by_label"]}
    expected = {**sizes, None: 20, "alpha": 10}
    assert set(by_label) == set(expected)
    for label, n in expected.items():
        assert by_label[label] == quotas(n, RULE["ratios"]), label  # type: ignore[arg-type]
    assert again.json()["changed"] == 0
    assert assignment(db, dataset.id) == split_once
    described = api.get(f"/v1/datasets/{dataset.name}/split").json()
    assert described["by_label"] == response.json()["by_label"]
    assert described["rule"]["stratified"] is True


def test_stratified_seed_changes_the_split_not_the_shares(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    add_examples(db, dataset.id, 500, label="a", prefix="a")
    add_examples(db, dataset.id, 50, label="b", prefix="b")
    first = api.post(f"/v1/datasets/{dataset.name}/split", json={**RULE, "stratified": True}).json()
    before = assignment(db, dataset.id)

    second = api.post(f"/v1/datasets/{dataset.name}/split", json={**RULE, "seed": 99, "stratified": True}).json()

    assert second["by_label"] == first["by_label"]
    assert second["changed"] > 100
    assert sum(before[i] != s for i, s in assignment(db, dataset.id).items()) == second["changed"]


def test_tombstones_keep_their_split(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    add_examples(db, dataset.id, 100)
    db.execute(sql("SELECT memora.create_snapshot(:n, 's1')"), {"n": dataset.name})
    gone = db.execute(
        sql("SELECT id, split FROM memora.example WHERE dataset_id = :d ORDER BY seq LIMIT 20"), {"d": dataset.id}
    ).all()
    for row in gone:
        assert api.delete(f"/v1/datasets/{dataset.name}/examples/{row.id}").status_code == 204

    response = api.post(f"/v1/datasets/{dataset.name}/split", json={**RULE, "seed": 12345})

    assert response.json()["examples"] == 80
    kept = dict(
        db.execute(
            sql("SELECT id, split FROM memora.example WHERE dataset_id = :d AND deleted_at IS NOT NULL"),
            {"d": dataset.id},
        ).all()
    )
    assert kept == {row.id: row.split for row in gone}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ratios": {"train": 0.8, "validation": 0.1, "test": 0.2}}, "body.ratios"),
        ({"ratios": {"train": 1.1, "test": -0.1}}, "body.ratios.train"),
        ({"ratios": {"train": 0.9, "holdout": 0.1}}, "body.ratios.holdout.[key]"),
        ({"ratios": {"train": "lots"}}, "body.ratios.train"),
        ({"seed": 2**31}, "body.seed"),
        ({"stratify": True}, "body.stratify"),
    ],
)
def test_bad_rules_are_422_naming_the_field(api: TestClient, db: Session, body: dict[str, Any], field: str) -> None:
    dataset = make_dataset(db)
    make_example(db, dataset)
    before = assignment(db, dataset.id)

    response = api.post(f"/v1/datasets/{dataset.name}/split", json=body)

    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]]
    assert assignment(db, dataset.id) == before


def test_unknown_dataset_is_404(api: TestClient) -> None:
    assert api.post("/v1/datasets/nope/split", json=RULE).status_code == 404
    assert api.get("/v1/datasets/nope/split").json()["error"]["code"] == "not_found"


def memora(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app", "--database-url", url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_cli_split(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute(q("INSERT INTO memora.dataset (name, task) VALUES ('mail', 'classification')"))
        conn.execute(
            q(
                "INSERT INTO memora.example (dataset_id, format, input, label) "
                "SELECT d.id, 'classification', jsonb_build_object('text', 'mail ' || i), CASE WHEN i % 10 = 0 "
                "THEN 'spam' ELSE 'ham' END FROM memora.dataset d, generate_series(1, 400) i"
            )
        )

    done = memora(fresh_db_url, "dataset", "split", "mail", "--train", "0.7", "--validation", "0.15", "--test",
                  "0.15", "--seed", "5", "--stratified")  # fmt: skip
    bad = memora(fresh_db_url, "dataset", "split", "mail", "--train", "0.9")

    assert done.returncode == 0, done.stderr
    assert "mail: 400 examples (train 280, validation 60, test 60); " in done.stdout
    assert "spam\ttrain 28\tvalidation 6\ttest 6" in done.stdout
    with psycopg.connect(fresh_db_url) as conn:
        rule = conn.execute(q("SELECT split_seed, split_stratified, split_ratios FROM memora.dataset")).fetchone()
    assert rule == (5, True, {"train": 0.7, "validation": 0.15, "test": 0.15})
    assert bad.returncode == 1
    assert "--train/--validation/--test: " in bad.stderr
    assert "add up to 1" in bad.stderr
