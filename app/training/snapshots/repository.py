"""The queries of snapshots: freezing (memora.create_snapshot), their examples, and the purge of tombstones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from app.db.models import Example, Snapshot, SnapshotExample
from app.db.query import Query
from app.training.datasets.repository import out_columns

_CREATE = Query("SELECT (s).id FROM memora.create_snapshot(%(dataset)s, %(name)s, %(description)s) s")
_PURGE = Query("""
    DELETE FROM memora.example e
    WHERE e.dataset_id = %(dataset)s AND e.deleted_at IS NOT NULL
      AND NOT EXISTS (SELECT FROM memora.snapshot_example s WHERE s.dataset_id = e.dataset_id AND s.example_id = e.id)
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
