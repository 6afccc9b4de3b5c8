"""The queries of datasets and examples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, any_, delete, func, literal, select, update
from sqlalchemy.orm import Session

from app.db.models import Collection, Dataset, Document, Example, Snapshot, SnapshotExample
from app.db.query import Query
from app.training.formats import records

# The columns that make up an example's content (records.to_record turns them back into a record).
CONTENT = tuple(getattr(Example, column) for column in records.COLUMNS)


def out_columns(seq: Any, split: Any) -> tuple[Any, ...]:
    """What service.to_out reads of an example, with SEQ and SPLIT from the live row or from a snapshot's."""
    return (
        Example.id,
        seq,
        split,
        Example.metadata_.label("metadata"),
        Example.token_count,
        Example.created_at,
        Example.source_collection_id,
        Example.source_document_id,
        Example.source_chunk_id,
        *CONTENT,
    )


def counts(db: Session, dataset_ids: list[int]) -> dict[int, tuple[dict[str, int], int]]:
    """Live examples by split, and snapshots, of each dataset."""
    splits = db.execute(
        select(Example.dataset_id, func.coalesce(Example.split, "none"), func.count())
        .where(Example.dataset_id.in_(dataset_ids), Example.deleted_at.is_(None))
        .group_by(Example.dataset_id, Example.split)
    ).all()
    snapshots = dict(
        db.execute(
            select(Snapshot.dataset_id, func.count())
            .where(Snapshot.dataset_id.in_(dataset_ids))
            .group_by(Snapshot.dataset_id)
        ).all()
    )
    result: dict[int, tuple[dict[str, int], int]] = {i: ({}, snapshots.get(i, 0)) for i in dataset_ids}
    for dataset_id, split, n in splits:
        result[dataset_id][0][split] = n
    return result


def page(
    db: Session, dataset: Dataset, *, after: int, limit: int, split: str | None, label: str | None
) -> Sequence[Row[Any]]:
    query = (
        select(*out_columns(Example.seq, Example.split))
        .where(Example.dataset_id == dataset.id, Example.deleted_at.is_(None), Example.seq > after)
        .order_by(Example.seq)
        .limit(limit)
    )
    if split is not None:
        query = query.where(Example.split == split)
    if label is not None:
        query = query.where((Example.label == label) | (literal(label) == any_(Example.labels)))
    return db.execute(query).all()


def one(db: Session, dataset: Dataset, example_id: int, *, lock: bool = False) -> Row[Any] | None:
    """The live example EXAMPLE_ID of DATASET (FOR UPDATE when LOCK), or None."""
    query = select(*out_columns(Example.seq, Example.split)).where(
        Example.dataset_id == dataset.id, Example.id == example_id, Example.deleted_at.is_(None)
    )
    rows = db.execute(query.with_for_update(of=Example) if lock else query).all()
    return rows[0] if rows else None


def some(db: Session, dataset: Dataset, ids: Sequence[int]) -> Sequence[Row[Any]]:
    """The live examples of DATASET among IDS, in seq order."""
    query = select(*out_columns(Example.seq, Example.split)).where(
        Example.dataset_id == dataset.id, Example.id.in_(ids), Example.deleted_at.is_(None)
    )
    return db.execute(query.order_by(Example.seq)).all()


def sources(db: Session, rows: Sequence[Row[Any]]) -> dict[tuple[int, int | None, int | None], dict[str, Any]]:
    """The collection name, document external_id and chunk id each row's provenance columns point at."""
    keys = {(r.source_collection_id, r.source_document_id, r.source_chunk_id) for r in rows if r.source_collection_id}
    if not keys:
        return {}
    names = dict(
        db.execute(select(Collection.id, Collection.name).where(Collection.id.in_({k[0] for k in keys}))).all()
    )
    documents = dict(
        db.execute(
            select(Document.id, Document.external_id).where(Document.id.in_({k[1] for k in keys if k[1] is not None}))
        ).all()
    )
    result = {}
    for collection_id, document_id, chunk_id in keys:
        source: dict[str, Any] = {"collection": names.get(collection_id)}
        if document_id is not None:
            source["external_id"] = documents.get(document_id)
        if chunk_id is not None:
            source["chunk_id"] = chunk_id
        result[(collection_id, document_id, chunk_id)] = source
    return result


def held_by_snapshot(db: Session, dataset: Dataset, example_id: int) -> bool:
    return bool(
        db.scalar(
            select(
                select(SnapshotExample.seq)
                .where(SnapshotExample.dataset_id == dataset.id, SnapshotExample.example_id == example_id)
                .exists()
            )
        )
    )


def delete_example(db: Session, dataset_id: int, example_id: int) -> None:
    db.execute(delete(Example).where(Example.dataset_id == dataset_id, Example.id == example_id))


def delete_snapshots(db: Session, dataset_id: int) -> None:
    """Delete the dataset's snapshots (before the dataset: their rows hold examples, RESTRICT)."""
    db.execute(delete(Snapshot).where(Snapshot.dataset_id == dataset_id))


def tombstone(db: Session, dataset: Dataset, example_id: int) -> None:
    db.execute(
        update(Example).where(Example.dataset_id == dataset.id, Example.id == example_id).values(deleted_at=func.now())
    )


_LABEL_COUNTS = Query("""
    SELECT l.label, count(*) AS n
    FROM memora.example e
    CROSS JOIN LATERAL (SELECT e.label WHERE e.label IS NOT NULL UNION ALL SELECT unnest(e.labels)) l(label)
    WHERE e.dataset_id = %(dataset)s AND e.deleted_at IS NULL AND (%(split)s::text IS NULL OR e.split = %(split)s)
    GROUP BY l.label
    ORDER BY n DESC, l.label
""")


def label_counts(db: Session, dataset: Dataset, split: str | None) -> list[tuple[str, int]]:
    """Live examples per label (a multi-label example counts once for each of its labels)."""
    rows = _LABEL_COUNTS.run(db, {"dataset": dataset.id, "split": split}).all()
    return [(row.label, row.n) for row in rows]
