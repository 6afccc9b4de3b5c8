"""The batch query: a run of seq order or of the shuffled permutation, joined to the examples by index."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.db.query import Query
from app.training.batches.cursor import Cursor
from app.training.formats import records

# The columns records.to_record reads.
_RECORD = (*records.COLUMNS, "metadata")


@lru_cache(maxsize=256)
def _query(text: str) -> Query:
    """One Query per statement text: a request's fields and form make one of a few dozen statements."""
    return Query(text)


class BatchQuery:
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
                # Most examples have no metadata: NULL spares decoding '{}' per row.
                columns.append("nullif(e.metadata, '{}'::jsonb) AS metadata")
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
        frozen = "SELECT s.seq, s.split, s.dataset_id, s.example_id FROM memora.snapshot_example s"
        example = (
            f"CROSS JOIN LATERAL (SELECT {self.example_columns} FROM memora.example e "
            "WHERE e.dataset_id = s.dataset_id AND e.id = s.example_id LIMIT 1) e "
            if self.example_columns
            else ""
        )
        if count is None and where.snapshot is None:
            sql = (
                f"SELECT {self.columns}, e.seq AS key FROM memora.example e WHERE e.dataset_id = %(dataset)s "
                f"AND e.seq >= %(start)s AND e.deleted_at IS NULL {split.format(t='e')}ORDER BY e.seq LIMIT %(limit)s"
            )
        elif count is None:
            sql = (
                f"WITH s AS MATERIALIZED ({frozen} WHERE s.snapshot_id = %(snapshot)s AND s.seq >= %(start)s "
                f"{split.format(t='s')}ORDER BY s.seq LIMIT %(limit)s) "
                f"SELECT {self.columns}, s.seq AS key FROM s {example}ORDER BY s.seq"
            )
        else:
            positions = "memora.shuffle_positions(%(start)s, %(count)s, %(n)s, %(seed)s) p"
            sql = f"SELECT {self.columns}, p.i AS key FROM {positions} "
            if where.snapshot is None:
                sql += (
                    f"CROSS JOIN LATERAL (SELECT {self.example_columns} FROM memora.example e "
                    "WHERE e.dataset_id = %(dataset)s AND e.seq = p.x AND e.deleted_at IS NULL "
                    f"{split.format(t='e')}LIMIT 1) e "
                )
            else:
                sql += (
                    f"CROSS JOIN LATERAL ({frozen} WHERE s.snapshot_id = %(snapshot)s AND s.seq = p.x "
                    f"{split.format(t='s')}LIMIT 1) s {example}"
                )
            sql += "ORDER BY p.i LIMIT %(limit)s"
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
        return list(_query(sql).run(self.db, params).all())
