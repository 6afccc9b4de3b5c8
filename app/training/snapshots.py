"""Snapshots: a dataset's examples frozen (ids, content hashes, splits) as an immutable, named version.

memora.create_snapshot does the freezing, the same function a psql user calls. Examples never change content
(memora.example_immutable), so a snapshot row (example id, content hash, split) reads the same example forever.
Deleting an example a snapshot holds leaves a tombstone (example.deleted_at) instead of deleting the row; deleting
the snapshot purges the tombstones no other snapshot holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.collections.schemas import NAME_PATTERN
from app.db.engine import compose
from app.db.models import Dataset, Example, Snapshot, SnapshotExample
from app.db.repository import get_named
from app.errors import ConflictError, NotFoundError
from app.training.datasets import repository, service
from app.training.datasets.schemas import ExampleOut


class SnapshotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Letters, digits, '_', '.', '-'; at most 128 characters.")
    description: str = Field(default="", max_length=10_000)


class SnapshotOut(BaseModel):
    name: str
    description: str
    examples: int = Field(description="Examples frozen in the snapshot.")
    split_counts: dict[str, int] = Field(description="Examples per split at freezing time.")
    created_at: datetime


def out(snapshot: Snapshot) -> SnapshotOut:
    return SnapshotOut(
        name=snapshot.name,
        description=snapshot.description,
        examples=snapshot.examples,
        split_counts=snapshot.split_counts,
        created_at=snapshot.created_at,
    )


def create(db: Session, dataset: Dataset, data: SnapshotCreate) -> Snapshot:
    """Freeze the live examples of DATASET as snapshot DATA.name (memora.create_snapshot)."""
    try:
        with db.begin_nested():
            conn = db.connection()
            statement = compose(
                conn, "SELECT (s).id FROM {}(%(dataset)s, %(name)s, %(description)s) s", "create_snapshot"
            )
            snapshot_id = conn.exec_driver_sql(
                statement, {"dataset": dataset.name, "name": data.name, "description": data.description}
            ).scalar_one()
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


def get(db: Session, dataset: Dataset, name: str) -> Snapshot:
    return get_named(db, Snapshot, name, within=dataset)


def all_of(db: Session, dataset: Dataset) -> Sequence[Snapshot]:
    return db.scalars(select(Snapshot).where(Snapshot.dataset_id == dataset.id).order_by(Snapshot.created_at)).all()


def delete(db: Session, dataset: Dataset, name: str) -> int:
    """Delete a snapshot and purge the tombstones no snapshot holds any more; returns how many were purged."""
    snapshot = get(db, dataset, name)
    with frozen_errors():
        db.delete(snapshot)
        db.flush()
    return repository.purge_tombstones(db, dataset.id)


def refuse_write(db: Session, dataset_name: str, name: str) -> None:
    """Writes through a snapshot: 404 for an unknown dataset or snapshot, else 409."""
    dataset = service.get(db, dataset_name)
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


def _rows(snapshot: Snapshot) -> Any:
    return (
        select(*repository.out_columns(SnapshotExample.seq, SnapshotExample.split))
        .join(Example, (Example.dataset_id == SnapshotExample.dataset_id) & (Example.id == SnapshotExample.example_id))
        .where(SnapshotExample.snapshot_id == snapshot.id)
    )


def page(
    db: Session, snapshot: Snapshot, *, limit: int, cursor: str | None, split: str | None
) -> tuple[list[ExampleOut], str | None]:
    """The snapshot's examples in its seq order (0 .. examples-1), a page at a time; tombstones included."""
    query = _rows(snapshot).where(SnapshotExample.seq > service.parse_cursor(cursor))
    if split is not None:
        query = query.where(SnapshotExample.split == split)
    rows: Sequence[Row[Any]] = db.execute(query.order_by(SnapshotExample.seq).limit(limit)).all()
    return service.to_out(db, rows), (str(rows[-1].seq) if len(rows) == limit else None)


def one(db: Session, dataset: Dataset, snapshot: Snapshot, example_id: int) -> ExampleOut:
    query = _rows(snapshot).where(SnapshotExample.dataset_id == dataset.id, SnapshotExample.example_id == example_id)
    rows = db.execute(query).all()
    if not rows:
        raise NotFoundError(f"snapshot {snapshot.name!r} of dataset {dataset.name!r} has no example {example_id}")
    return service.to_out(db, rows)[0]
