"""Snapshots: a dataset's examples frozen (ids, content hashes, splits) as an immutable, named version.

memora.create_snapshot does the freezing, the same function a psql user calls. Examples never change content
(memora.example_immutable), so a snapshot row (example id, content hash, split) reads the same example forever.
Deleting an example a snapshot holds leaves a tombstone (example.deleted_at) instead of deleting the row; deleting
the snapshot purges the tombstones no other snapshot holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.db.models import Dataset, Snapshot
from app.db.repository import get_named
from app.errors import ConflictError, NotFoundError
from app.training.datasets import service as datasets
from app.training.datasets.schemas import ExampleOut
from app.training.snapshots import repository
from app.training.snapshots.schemas import CHANGES, ChangedExample, SnapshotCreate, SnapshotDiff

# How much of an example's text a diff shows.
SUMMARY_CHARS = 200


def create(db: Session, dataset: Dataset, data: SnapshotCreate) -> Snapshot:
    """Freeze the live examples of DATASET as snapshot DATA.name (memora.create_snapshot)."""
    try:
        with db.begin_nested():
            snapshot_id = repository.create(db, dataset.name, data.name, data.description)
    except DBAPIError as exc:
        if isinstance(exc.orig, psycopg.errors.UniqueViolation):
            raise ConflictError(
                f"dataset {dataset.name!r} has a snapshot named {data.name!r} already",
                details=[{"field": "body.name", "reason": "is taken"}],
            ) from None
        raise
    snapshot = db.get(Snapshot, snapshot_id)
    assert snapshot is not None
    return snapshot


def get(db: Session, dataset: Dataset, name: str, *, keep: bool = False) -> Snapshot:
    """Snapshot NAME of DATASET, or a 404 naming both (KEEP: app/db/repository.get_named)."""
    return get_named(db, Snapshot, name, keep=keep, within=dataset)


def all_of(db: Session, dataset: Dataset) -> Sequence[Snapshot]:
    """The dataset's snapshots, oldest first."""
    return repository.all_of(db, dataset.id)


def delete(db: Session, dataset: Dataset, name: str) -> int:
    """Delete a snapshot and purge the tombstones no snapshot holds any more; returns how many were purged."""
    # FOR UPDATE: a delete of it running meanwhile is waited for, and then it is gone (a 404, not a delete that
    # matches no row).
    snapshot = get_named(db, Snapshot, name, lock=True, within=dataset)
    with frozen_errors():
        db.delete(snapshot)
        db.flush()
    return repository.purge_tombstones(db, dataset.id)


def refuse_write(db: Session, dataset_name: str, name: str) -> None:
    """Writes through a snapshot: 404 for an unknown dataset or snapshot, else 409."""
    dataset = datasets.get(db, dataset_name)
    get(db, dataset, name)
    raise ConflictError(
        f"snapshot {name!r} of dataset {dataset_name!r} is immutable: add or delete examples in the live dataset "
        f"(/v1/datasets/{dataset_name}/examples) and create a new snapshot"
    )


@contextmanager
def frozen_errors() -> Iterator[None]:
    """The database's refusal to change a snapshot's rows (SQLSTATE 55000) as a 409."""
    try:
        yield
    except DBAPIError as exc:
        if isinstance(exc.orig, psycopg.errors.ObjectNotInPrerequisiteState):
            raise ConflictError(str(exc.orig.diag.message_primary)) from None
        raise


def page(
    db: Session, snapshot: Snapshot, *, limit: int, cursor: str | None, split: str | None
) -> tuple[list[ExampleOut], str | None]:
    """The snapshot's examples in its seq order (0 .. examples-1), a page at a time; tombstones included."""
    rows = repository.page(db, snapshot.id, after=datasets.parse_cursor(cursor), limit=limit, split=split)
    return datasets.to_out(db, rows), (str(rows[-1].seq) if len(rows) == limit else None)


def one(db: Session, dataset: Dataset, snapshot: Snapshot, example_id: int) -> ExampleOut:
    row = repository.one(db, snapshot.id, dataset.id, example_id)
    if row is None:
        raise NotFoundError(f"snapshot {snapshot.name!r} of dataset {dataset.name!r} has no example {example_id}")
    return datasets.to_out(db, [row])[0]


def diff(
    db: Session,
    dataset: Dataset,
    snapshot: Snapshot,
    against: Snapshot,
    *,
    change: str | None,
    limit: int,
    cursor: str | None,
) -> SnapshotDiff:
    """What changed from snapshot AGAINST to SNAPSHOT (memora.snapshot_diff_v1): how many examples were added,
    removed and moved to another split, and a page of them (of kind CHANGE, if given) in example id order."""
    after = datasets.parse_cursor(cursor)
    counts = dict.fromkeys(CHANGES, 0) | repository.diff_counts(db, dataset.name, against.name, snapshot.name)
    rows = repository.diff_page(
        db, dataset, against.name, snapshot.name, after=after, limit=limit + 1, change=change, chars=SUMMARY_CHARS
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return SnapshotDiff(
        snapshot=snapshot.name,
        against=against.name,
        counts=counts,
        items=[ChangedExample.model_validate(row._mapping) for row in rows],
        next_cursor=str(rows[-1].example_id) if more else None,
    )
