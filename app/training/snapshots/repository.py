"""The queries of snapshots: freezing (memora.create_snapshot), their examples, what changed between two
(memora.snapshot_diff_v1), and the purge of tombstones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from app.db.models import Dataset, Example, Snapshot, SnapshotExample
from app.db.query import Query
from app.training.datasets.repository import out_columns

_CREATE = Query("SELECT (s).id FROM memora.create_snapshot(%(dataset)s, %(name)s, %(description)s) s")
_PURGE = Query("""
    DELETE FROM memora.example e
    WHERE e.dataset_id = %(dataset)s AND e.deleted_at IS NOT NULL
      AND NOT EXISTS (SELECT FROM memora.snapshot_example s WHERE s.dataset_id = e.dataset_id AND s.example_id = e.id)
""")


# What changed from snapshot A to snapshot B, with what the example is (examples are immutable, so the live row is
# the one both snapshots froze): every snapshot row has its example (RESTRICT), so the join loses none.
_DIFF_COUNTS = Query("""
    SELECT d.change, count(*) AS n FROM memora.snapshot_diff_v1(%(dataset)s, %(a)s, %(b)s) d GROUP BY d.change
""")
_DIFF_PAGE = Query("""
    SELECT d.example_id, d.change, d.split_before, d.split_after, e.seq, e.format, e.label, e.labels,
           left(memora.example_text(e.format, e.input, e.output), %(chars)s) AS text, e.deleted_at IS NULL AS live
    FROM memora.snapshot_diff_v1(%(dataset)s, %(a)s, %(b)s) d
    JOIN memora.example e ON e.dataset_id = %(dataset_id)s AND e.id = d.example_id
    WHERE d.example_id > %(after)s AND (%(change)s::text IS NULL OR d.change = %(change)s::text)
    ORDER BY d.example_id
    LIMIT %(limit)s
""")


def create(db: Session, dataset: str, name: str, description: str) -> int:
    """Freeze DATASET's live examples as snapshot NAME; its id."""
    return int(_CREATE.run(db, {"dataset": dataset, "name": name, "description": description}).scalar_one())


def all_of(db: Session, dataset_id: int) -> Sequence[Snapshot]:
    return db.scalars(select(Snapshot).where(Snapshot.dataset_id == dataset_id).order_by(Snapshot.created_at)).all()


def _rows(snapshot_id: int) -> Select[Any]:
    """The snapshot's examples as datasets.service.to_out reads them, with the seq and split it froze."""
    return (
        select(*out_columns(SnapshotExample.seq, SnapshotExample.split))
        .join(Example, (Example.dataset_id == SnapshotExample.dataset_id) & (Example.id == SnapshotExample.example_id))
        .where(SnapshotExample.snapshot_id == snapshot_id)
    )


def page(db: Session, snapshot_id: int, *, after: int, limit: int, split: str | None) -> Sequence[Row[Any]]:
    query = _rows(snapshot_id).where(SnapshotExample.seq > after)
    if split is not None:
        query = query.where(SnapshotExample.split == split)
    return db.execute(query.order_by(SnapshotExample.seq).limit(limit)).all()


def one(db: Session, snapshot_id: int, dataset_id: int, example_id: int) -> Row[Any] | None:
    query = _rows(snapshot_id).where(SnapshotExample.dataset_id == dataset_id, SnapshotExample.example_id == example_id)
    return db.execute(query).first()


def purge_tombstones(db: Session, dataset_id: int) -> int:
    """Delete the tombstones no snapshot holds any more (after a snapshot is deleted)."""
    return int(_PURGE.run(db, {"dataset": dataset_id}).rowcount)


def diff_counts(db: Session, dataset: str, a: str, b: str) -> dict[str, int]:
    """Examples added, removed and moved to another split from snapshot A to snapshot B of DATASET."""
    return {row.change: row.n for row in _DIFF_COUNTS.run(db, {"dataset": dataset, "a": a, "b": b})}


def diff_page(
    db: Session, dataset: Dataset, a: str, b: str, *, after: int, limit: int, change: str | None, chars: int
) -> Sequence[Row[Any]]:
    """Up to LIMIT changed examples from snapshot A to B after example id AFTER, of kind CHANGE if given, each with
    the first CHARS characters of its text."""
    params = {"dataset": dataset.name, "dataset_id": dataset.id, "a": a, "b": b, "after": after, "limit": limit,
              "change": change, "chars": chars}  # fmt: skip
    return _DIFF_PAGE.run(db, params).all()
