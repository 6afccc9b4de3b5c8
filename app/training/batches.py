"""Batches for a training loop: a dataset's (or a snapshot's) examples a batch at a time, in seq order or shuffled.

Every batch is a keyset read, never OFFSET, so the last batch of an epoch costs what the first does. An epoch is
fixed when it starts: its cursor carries N, the size of the seq range it covers (the dataset's next_seq, or the
snapshot's example count), and examples added later (seq >= N) wait for the next epoch. Unshuffled, a batch is the
next examples by seq. Shuffled, position p of the epoch is the example at seq = memora.shuffle_position(p, N, seed),
a permutation computed for a run of positions at a time (memora.shuffle_positions) and joined to the examples by
index: no table is sorted. Positions whose seq is deleted, or in another split, are skipped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.db.engine import compose
from app.db.models import Dataset, Snapshot
from app.errors import InvalidInputError
from app.training.formats import records
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
# The columns records.to_record reads.
_RECORD = (*records.COLUMNS, "metadata")
# Positions probed per query at most, when a split filter or deletions leave few examples among them.
_MAX_PROBE = 100_000
_CURSOR_VERSION = 1


class Epoch(BaseModel):
    seed: int | None = Field(description="The shuffle seed; null: seq order.")
    examples: int = Field(
        description="Size of the epoch's seq range: a snapshot's examples, or the dataset's next_seq when the epoch "
        "began (deleted examples and other splits included)."
    )


class Batch(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = Field(description="The next batch's cursor; null after the epoch's last batch.")
    epoch: Epoch


@dataclass(frozen=True)
class Cursor:
    """Where an epoch stands: what it reads (dataset, snapshot, split, seed), its size N and its next position."""

    dataset: int
    snapshot: int | None
    split: str | None
    seed: int | None
    n: int
    position: int

    def encode(self) -> str:
        payload = json.dumps([_CURSOR_VERSION, *asdict(self).values()], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(payload + _digest(payload)).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            payload, digest = raw[:-8], raw[-8:]
            if _digest(payload) != digest:
                raise ValueError("checksum")
            version, *values = json.loads(payload)
            if version != _CURSOR_VERSION or len(values) != 6:
                raise ValueError("version")
            cursor = cls(*values)
            ints = (cursor.dataset, cursor.n, cursor.position)
            if not all(type(v) is int and v >= 0 for v in ints) or cursor.position > cursor.n:
                raise ValueError("values")
        except (ValueError, TypeError, UnicodeDecodeError):
            raise _cursor_error("not a cursor this API gave out (garbled or edited)") from None
        return cursor


def _digest(payload: bytes) -> bytes:
    return hashlib.sha256(b"memora-batch-cursor\0" + payload).digest()[:8]


def _cursor_error(reason: str) -> InvalidInputError:
    return InvalidInputError.for_field("cursor", reason)


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
    query = _Query(db, where, fields)
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
        raise _cursor_error(f"belongs to another dataset than {dataset.name!r}")
    if cursor.snapshot != snapshot_id:
        raise _cursor_error("belongs to another snapshot" if cursor.snapshot else "belongs to a snapshot's batches")
    if cursor.split != split:
        raise _cursor_error(f"belongs to split {cursor.split!r}, not {split!r}")
    if cursor.seed != seed:
        raise _cursor_error(f"belongs to shuffle_seed {cursor.seed!r}, not {seed!r}")
    if cursor.n > n or (snapshot is not None and cursor.n != n):
        raise _cursor_error("not a cursor this API gave out (its epoch is larger than the dataset)")
    return cursor


def _prior(dataset: Dataset, snapshot: Snapshot | None, split: str | None) -> float:
    """The expected share of positions that hold a wanted example (the first probe's size follows from it)."""
    if split is None:
        return 1.0
    if snapshot is not None:
        return snapshot.split_counts.get(split, 0) / max(snapshot.examples, 1)
    total = sum(dataset.split_ratios.values())
    return dataset.split_ratios.get(split, 0) / total if total > 0 else 0.0


def _probe(query: _Query, where: Cursor, limit: int, prior: float) -> list[Row[Any]]:
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


class _Query:
    """The batch query for one request: live or snapshot, seq order or shuffled, with the columns FIELDS need.

    Each form reaches rows through an index whatever the planner estimates: the driving rows come from an ordered
    LIMIT (seq order) or from the permutation, and the rest are LATERAL lookups with LIMIT 1, which stay
    parameterised index scans (never a hash join over the whole table).
    """

    def __init__(self, db: Session, where: Cursor, fields: Sequence[str]) -> None:
        self.db = db
        self.where = where
        live = where.snapshot is None
        frozen = {} if live else {"id": "s.example_id", "seq": "s.seq", "split": "s.split"}
        wanted: list[str] = []  # columns of example e
        columns: list[str] = []  # of the result
        for name in fields:
            if name == "record":
                wanted += _RECORD
                columns += [f"e.{c}" for c in _RECORD if c != "metadata"]
                # Most examples have no metadata: NULL spares decoding '{}' per row. (Braces doubled for compose.)
                columns.append("nullif(e.metadata, '{{}}'::jsonb) AS metadata")
            elif name in frozen:
                columns.append(f"{frozen[name]} AS f_{name}")
            else:
                wanted.append(name)
                columns.append(f"e.{name} AS f_{name}")
        self.example_columns = ", ".join(f"e.{c}" for c in dict.fromkeys(wanted))
        self.columns = ", ".join(columns)

    def rows(self, *, start: int, count: int | None, limit: int) -> list[Row[Any]]:
        """Up to LIMIT rows from position START on (seq order), or among positions START .. START+COUNT-1."""
        where = self.where
        split = "" if where.split is None else "AND {t}.split = %(split)s "
        names: list[str] = []
        example = (
            f"CROSS JOIN LATERAL (SELECT {self.example_columns} FROM {{}} e "
            "WHERE e.dataset_id = s.dataset_id AND e.id = s.example_id LIMIT 1) e "
        )
        if count is None and where.snapshot is None:
            sql = (
                f"SELECT {self.columns}, e.seq AS key FROM {{}} e WHERE e.dataset_id = %(dataset)s "
                f"AND e.seq >= %(start)s AND e.deleted_at IS NULL {split.format(t='e')}ORDER BY e.seq LIMIT %(limit)s"
            )
            names.append("example")
        elif count is None:
            sql = (
                "WITH s AS MATERIALIZED (SELECT s.seq, s.split, s.dataset_id, s.example_id FROM {} s "
                f"WHERE s.snapshot_id = %(snapshot)s AND s.seq >= %(start)s {split.format(t='s')}"
                f"ORDER BY s.seq LIMIT %(limit)s) SELECT {self.columns}, s.seq AS key FROM s "
            )
            names.append("snapshot_example")
            if self.example_columns:
                sql += example
                names.append("example")
            sql += "ORDER BY s.seq"
        else:
            sql = f"SELECT {self.columns}, p.i AS key FROM {{}}(%(start)s, %(count)s, %(n)s, %(seed)s) p "
            names.append("shuffle_positions")
            if where.snapshot is None:
                sql += (
                    f"CROSS JOIN LATERAL (SELECT {self.example_columns} FROM {{}} e WHERE e.dataset_id = %(dataset)s "
                    f"AND e.seq = p.x AND e.deleted_at IS NULL {split.format(t='e')}LIMIT 1) e "
                )
                names.append("example")
            else:
                sql += (
                    "CROSS JOIN LATERAL (SELECT s.seq, s.split, s.dataset_id, s.example_id FROM {} s "
                    f"WHERE s.snapshot_id = %(snapshot)s AND s.seq = p.x {split.format(t='s')}LIMIT 1) s "
                )
                names.append("snapshot_example")
                if self.example_columns:
                    sql += example
                    names.append("example")
            sql += "ORDER BY p.i LIMIT %(limit)s"
        conn = self.db.connection()
        params = {
            "dataset": where.dataset,
            "snapshot": where.snapshot,
            "split": where.split,
            "seed": where.seed,
            "n": where.n,
            "start": start,
            "count": count,
            "limit": limit,
        }
        return list(conn.exec_driver_sql(compose(conn, sql, *names), params).all())
