"""Datasets and their examples: create, describe, page through, delete (with tombstones for snapshots)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.db.models import Dataset
from app.db.repository import add_named, get_named
from app.errors import InvalidInputError, NotFoundError
from app.limits import BIGINT_MAX
from app.training.datasets import repository
from app.training.datasets.schemas import DatasetCreate, DatasetOut, ExampleOut, SplitRule
from app.training.formats.records import to_record


def create(db: Session, data: DatasetCreate) -> Dataset:
    dataset = Dataset(
        name=data.name,
        task=data.task,
        description=data.description,
        metadata_=data.metadata,
        split_seed=data.split.seed,
        split_ratios=data.split.ratios,
        split_stratified=data.split.stratified,
    )
    return add_named(db, dataset, "uq_dataset_name")


def get(db: Session, name: str, *, lock: bool = False, keep: bool = False) -> Dataset:
    """Dataset NAME, or a 404 (LOCK and KEEP: app/db/repository.get_named)."""
    return get_named(db, Dataset, name, lock=lock, keep=keep)


def delete_dataset(db: Session, name: str) -> None:
    """Delete a dataset with its examples and snapshots (fine-tuning jobs keep its name in their lineage)."""
    dataset = get(db, name, lock=True)  # its embedding index goes with it (memora.dataset_index_trigger)
    # Snapshots first: their rows hold examples (RESTRICT), and a cascade from dataset may reach example first.
    repository.delete_snapshots(db, dataset.id)
    db.delete(dataset)
    db.flush()


def describe(db: Session, datasets: Sequence[Dataset]) -> list[DatasetOut]:
    counted = repository.counts(db, [d.id for d in datasets])
    out = []
    for d in datasets:
        splits, snapshots = counted[d.id]
        out.append(
            DatasetOut(
                name=d.name,
                task=d.task,
                description=d.description,
                metadata=d.metadata_,
                split=SplitRule(ratios=d.split_ratios, seed=d.split_seed, stratified=d.split_stratified),
                examples=sum(splits.values()),
                split_counts=splits,
                snapshots=snapshots,
                created_at=d.created_at,
                updated_at=d.updated_at,
            )
        )
    return out


def parse_cursor(cursor: str | None) -> int:
    """A page's next_cursor is the seq of its last example."""
    if cursor is None:
        return -1
    try:
        value = int(cursor)
    except ValueError:
        raise InvalidInputError.for_field("cursor", "not a cursor this API gave out") from None
    if not -1 <= value <= BIGINT_MAX:
        raise InvalidInputError.for_field("cursor", "not a cursor this API gave out")
    return value


def page(
    db: Session, dataset: Dataset, *, limit: int, cursor: str | None, split: str | None, label: str | None
) -> tuple[list[ExampleOut], str | None]:
    rows = repository.page(db, dataset, after=parse_cursor(cursor), limit=limit, split=split, label=label)
    items = to_out(db, rows)
    return items, (str(rows[-1].seq) if len(rows) == limit else None)


def one(db: Session, dataset: Dataset, example_id: int) -> ExampleOut:
    row = repository.one(db, dataset, example_id)
    if row is None:
        raise NotFoundError(f"dataset {dataset.name!r} has no example {example_id}")
    return to_out(db, [row])[0]


def some(db: Session, dataset: Dataset, ids: Sequence[int]) -> dict[int, ExampleOut]:
    """The live examples of DATASET among IDS, by id (ids that are not live examples are left out)."""
    return {example.id: example for example in to_out(db, repository.some(db, dataset, ids))} if ids else {}


def remove_example(db: Session, dataset: Dataset, example_id: int) -> None:
    """Delete an example from the live dataset. One that a snapshot holds becomes a tombstone, so the snapshot
    still reads it; it is purged when its last snapshot is deleted."""
    # FOR UPDATE: a delete of it running meanwhile is waited for, and then it is gone (a 404, as a second delete).
    if repository.one(db, dataset, example_id, lock=True) is None:
        raise NotFoundError(f"dataset {dataset.name!r} has no example {example_id}")
    if repository.held_by_snapshot(db, dataset, example_id):
        repository.tombstone(db, dataset, example_id)
    else:
        repository.delete_example(db, dataset.id, example_id)


def to_out(db: Session, rows: Sequence[Row[Any]]) -> list[ExampleOut]:
    sources = repository.sources(db, rows)
    return [
        ExampleOut(
            id=row.id,
            seq=row.seq,
            format=row.format,
            split=row.split,
            record=to_record(dict(row._mapping)),
            metadata=row.metadata,
            token_count=row.token_count,
            source=sources.get((row.source_collection_id, row.source_document_id, row.source_chunk_id)),
            created_at=row.created_at,
        )
        for row in rows
    ]
