"""The rules of sql/idempotent/009-training.sql as a psql user meets them: defaults, immutability, splits,
snapshots and the shuffle permutation."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tests.factories import make_dataset
from tests.schema import sql


def insert(db: Session, dataset_id: int, body: str, label: str = "ham") -> int:
    return int(
        db.execute(
            sql(
                "INSERT INTO memora.example (dataset_id, format, input, label) "
                "VALUES (:d, 'classification', jsonb_build_object('text', CAST(:t AS text)), :l) RETURNING id"
            ),
            {"d": dataset_id, "t": body, "l": label},
        ).scalar_one()
    )


def test_a_plain_insert_gets_seq_hashes_and_split(db: Session) -> None:
    dataset = make_dataset(db)

    ids = [insert(db, dataset.id, f"message {i}") for i in range(3)]

    rows = db.execute(
        sql("SELECT seq, split, content_hash IS NOT NULL AS h, text_hash IS NOT NULL AS th FROM memora.example "
             "WHERE dataset_id = :d ORDER BY id"),
        {"d": dataset.id},
    ).all()  # fmt: skip
    assert [r.seq for r in rows] == [0, 1, 2]
    assert all(r.h and r.th and r.split in ("train", "validation", "test") for r in rows)
    assert db.execute(sql("SELECT next_seq FROM memora.dataset WHERE id = :d"), {"d": dataset.id}).scalar() == 3
    assert len(ids) == 3


def test_normalised_text_hash_ignores_case_and_spacing_but_not_the_label(db: Session) -> None:
    dataset = make_dataset(db)
    for body, label in [("Hello  World", "ham"), (" hello\tworld\n", "ham"), ("hello world", "spam"), ("hello", "ham")]:
        insert(db, dataset.id, body, label)

    hashes = db.execute(
        sql("SELECT text_hash FROM memora.example WHERE dataset_id = :d ORDER BY seq"), {"d": dataset.id}
    ).scalars().all()  # fmt: skip
    assert hashes[0] == hashes[1]
    assert len({hashes[0], hashes[2], hashes[3]}) == 3


def test_an_exact_twin_joins_the_split_of_the_live_example(db: Session) -> None:
    dataset = make_dataset(db)
    first = insert(db, dataset.id, "Win a prize")
    db.execute(sql("UPDATE memora.example SET split = 'validation' WHERE id = :i"), {"i": first})

    twins = [insert(db, dataset.id, body) for body in ("win a PRIZE", "  Win a prize ")]

    splits = db.execute(
        sql("SELECT split FROM memora.example WHERE id = ANY(:ids)"), {"ids": twins}
    ).scalars().all()  # fmt: skip
    assert splits == ["validation", "validation"]


def test_examples_are_immutable_but_their_split_may_change(db: Session) -> None:
    dataset = make_dataset(db)
    example_id = insert(db, dataset.id, "fixed")

    db.execute(sql("UPDATE memora.example SET split = 'test' WHERE id = :i"), {"i": example_id})
    with pytest.raises(DBAPIError, match="immutable"), db.begin_nested():
        db.execute(sql("UPDATE memora.example SET label = 'spam' WHERE id = :i"), {"i": example_id})


def split_of(db: Session, keys: range, seed: int, ratios: str) -> list[str]:
    return list(
        db.execute(
            sql("SELECT memora.split_of(sha256(int4send(i)), :seed, CAST(:ratios AS jsonb)) FROM unnest(:keys) i"),
            {"seed": seed, "ratios": ratios, "keys": list(keys)},
        ).scalars()
    )


def test_split_of_is_deterministic_and_follows_the_ratios(db: Session) -> None:
    ratios = '{"train": 0.7, "validation": 0.2, "test": 0.1}'

    splits = split_of(db, range(20_000), 3, ratios)

    assert split_of(db, range(20_000), 3, ratios) == splits
    for name, share in [("train", 0.7), ("validation", 0.2), ("test", 0.1)]:
        assert abs(splits.count(name) / 20_000 - share) < 0.015
    halves = '{"train": 0.5, "test": 0.5}'
    seed_3, seed_4 = split_of(db, range(1000), 3, halves), split_of(db, range(1000), 4, halves)
    moved = sum(a != b for a, b in zip(seed_3, seed_4, strict=True))
    assert 400 < moved < 600  # another seed: a new, independent split
    assert split_of(db, range(10), 0, '{"train": 1}') == ["train"] * 10


def test_snapshot_rows_cannot_change_and_examples_they_hold_cannot_be_deleted(db: Session) -> None:
    dataset = make_dataset(db)
    held = insert(db, dataset.id, "held")
    snapshot = db.execute(
        sql("SELECT id, examples, split_counts FROM memora.create_snapshot(:n, 'v1', 'first')"), {"n": dataset.name}
    ).one()

    assert snapshot.examples == 1
    assert sum(snapshot.split_counts.values()) == 1
    with pytest.raises(DBAPIError, match="immutable"), db.begin_nested():
        db.execute(sql("UPDATE memora.snapshot_example SET split = 'test'"))
    with pytest.raises(DBAPIError, match="immutable"), db.begin_nested():
        db.execute(sql("DELETE FROM memora.snapshot_example WHERE snapshot_id = :s"), {"s": snapshot.id})
    with pytest.raises(DBAPIError, match="foreign key"), db.begin_nested():
        db.execute(sql("DELETE FROM memora.example WHERE id = :i"), {"i": held})
    db.execute(sql("DELETE FROM memora.snapshot WHERE id = :s"), {"s": snapshot.id})
    assert db.execute(sql("SELECT count(*) FROM memora.snapshot_example")).scalar() == 0


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1025])
def test_shuffle_position_is_a_permutation(db: Session, n: int) -> None:
    positions = db.execute(
        sql("SELECT memora.shuffle_position(i, :n, 42) FROM generate_series(0, :n - 1) i"), {"n": n}
    ).scalars().all()  # fmt: skip
    other = db.execute(
        sql("SELECT memora.shuffle_position(i, :n, 43) FROM generate_series(0, :n - 1) i"), {"n": n}
    ).scalars().all()  # fmt: skip

    assert sorted(positions) == list(range(n))
    if n >= 7:
        assert positions != list(range(n))
        assert positions != other


def test_text_hash_of_a_conversation_with_a_tool_call_and_no_content(db: Session) -> None:
    messages = (
        '[{"role": "user", "content": "Weather in Paris?"},'
        ' {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",'
        ' "function": {"name": "weather", "arguments": "{}"}}]},'
        ' {"role": "tool", "tool_call_id": "c1", "content": "sunny"},'
        ' {"role": "assistant", "content": "Sunny."}]'
    )

    hashed = db.execute(
        sql("SELECT memora.text_hash('chat', jsonb_build_object('messages', CAST(:m AS jsonb)), NULL, NULL, NULL)"),
        {"m": messages},
    ).scalar()

    assert hashed is not None
    assert len(hashed) == 32


def test_a_bulk_insert_from_psql_numbers_every_row(db: Session) -> None:
    dataset = make_dataset(db)

    db.execute(
        sql(
            "INSERT INTO memora.example (dataset_id, format, input, label) "
            "SELECT :d, 'classification', jsonb_build_object('text', 'message ' || i), 'ham' "
            "FROM generate_series(1, 5000) i"
        ),
        {"d": dataset.id},
    )

    seqs = db.execute(sql("SELECT seq FROM memora.example WHERE dataset_id = :d"), {"d": dataset.id}).scalars().all()
    next_seq = db.execute(sql("SELECT next_seq FROM memora.dataset WHERE id = :d"), {"d": dataset.id}).scalar()
    assert len(set(seqs)) == 5000
    assert max(seqs) < next_seq <= 2 * 5000  # blocks leave gaps, never more than the rows inserted
