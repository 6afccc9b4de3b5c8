"""Batches for a training loop: a dataset's (or a snapshot's) examples a batch at a time, in seq order or shuffled.

Every batch is a keyset read, never OFFSET, so the last batch of an epoch costs what the first does. An epoch is
fixed when it starts: its cursor carries N, the size of the seq range it covers (the dataset's next_seq, or the
snapshot's example count), and examples added later (seq >= N) wait for the next epoch. Unshuffled, a batch is the
next examples by seq. Shuffled, position p of the epoch is the example at seq = memora.shuffle_position(p, N, seed),
a permutation computed for a run of positions at a time (memora.shuffle_positions) and joined to the examples by
index: no table is sorted. Positions whose seq is deleted, or in another split, are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.db.models import Dataset, Snapshot
from app.errors import InvalidInputError
from app.training.batches.cursor import Cursor, cursor_error
from app.training.batches.repository import BatchQuery
from app.training.batches.schemas import Batch, Epoch
from app.training.formats.records import to_record

MAX_BATCH = 10_000
MAX_SEED = 2**63 - 5  # memora.shuffle_position adds up to 4 to the seed.
FIELDS = (
    "id",
    "seq",
    "split",
    "record",
    "label",
    "labels",
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "start_positions",
    "end_positions",
    "metadata",
    "token_count",
)
DEFAULT_FIELDS = ("id", "split", "record")
# Positions probed per query at most, when a split filter or deletions leave few examples among them.
_MAX_PROBE = 100_000


def parse_fields(values: Sequence[str] | None) -> tuple[str, ...]:
    """fields=id,record or fields=id&fields=record, in the order asked; unknown names are a 422."""
    if not values:
        return DEFAULT_FIELDS
    names = list(dict.fromkeys(name.strip() for value in values for name in value.split(",") if name.strip()))
    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        reason = f"unknown field {unknown[0]!r}; fields are {', '.join(FIELDS)}"
        raise InvalidInputError.for_field("fields", reason)
    return tuple(names) or DEFAULT_FIELDS


def batch(
    db: Session,
    dataset: Dataset,
    *,
    size: int,
    cursor: str | None,
    split: str | None,
    snapshot: Snapshot | None,
    seed: int | None,
    fields: Sequence[str],
) -> Batch:
    """One batch of SIZE examples and the cursor of the next (see the module's docstring)."""
    where = _resume(db, dataset, cursor, split, snapshot, seed)
    query = BatchQuery(db, where, fields)
    if seed is None:
        # Examples added since the epoch began (seq >= n) come last in seq order: they wait for the next epoch.
        rows = [r for r in query.rows(start=where.position, count=None, limit=size + 1) if r.key < where.n]
    else:
        rows = _probe(query, where, size + 1, _prior(dataset, snapshot, split))
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = Cursor(**(asdict(where) | {"position": rows[-1].key + 1})).encode() if more else None
    return Batch(
        items=[_item(row, fields) for row in rows], next_cursor=next_cursor, epoch=Epoch(seed=seed, examples=where.n)
    )


def _resume(
    db: Session, dataset: Dataset, text: str | None, split: str | None, snapshot: Snapshot | None, seed: int | None
) -> Cursor:
    """The request's cursor, checked against what the request reads; a new epoch without one."""
    n = dataset.next_seq if snapshot is None else snapshot.examples
    snapshot_id = None if snapshot is None else snapshot.id
    if text is None:
        return Cursor(dataset.id, snapshot_id, split, seed, n, 0)
    cursor = Cursor.decode(text)
    if cursor.dataset != dataset.id:
        raise cursor_error(f"belongs to another dataset than {dataset.name!r}")
    if cursor.snapshot != snapshot_id:
        raise cursor_error("belongs to another snapshot" if cursor.snapshot else "belongs to a snapshot's batches")
    if cursor.split != split:
        raise cursor_error(f"belongs to split {cursor.split!r}, not {split!r}")
    if cursor.seed != seed:
        raise cursor_error(f"belongs to shuffle_seed {cursor.seed!r}, not {seed!r}")
    if cursor.n > n or (snapshot is not None and cursor.n != n):
        raise cursor_error("not a cursor this API gave out (its epoch is larger than the dataset)")
    return cursor


def _prior(dataset: Dataset, snapshot: Snapshot | None, split: str | None) -> float:
    """The expected share of positions that hold a wanted example (the first probe's size follows from it)."""
    if split is None:
        return 1.0
    if snapshot is not None:
        return snapshot.split_counts.get(split, 0) / max(snapshot.examples, 1)
    total = sum(dataset.split_ratios.values())
    return dataset.split_ratios.get(split, 0) / total if total > 0 else 0.0


def _probe(query: BatchQuery, where: Cursor, limit: int, prior: float) -> list[Row[Any]]:
    """LIMIT rows of the shuffled epoch from WHERE.position on: runs of positions, sized by the share that hit."""
    rows: list[Row[Any]] = []
    position, probed, rate = where.position, 0, max(prior, 0.01)
    while len(rows) < limit and position < where.n:
        want = limit - len(rows)
        # Every probed position is looked up, so aim a little past the expected need, not far past it.
        count = min(math.ceil(want / rate * 1.15) + 16, _MAX_PROBE)
        found = query.rows(start=position, count=count, limit=want)
        rows += found
        position += count
        probed += count
        rate = max(len(rows) / probed, 1 / 1000)
    return rows


def _item(row: Row[Any], fields: Sequence[str]) -> dict[str, Any]:
    values = row._asdict()
    return {name: to_record(values) if name == "record" else values[f"f_{name}"] for name in fields}
