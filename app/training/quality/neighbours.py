"""Near duplicates through a dataset's HNSW index: each example asks it for its k nearest neighbours."""

from __future__ import annotations

import math
from typing import Any, Literal

from psycopg import sql
from sqlalchemy import Connection

from app.db.models import Dataset
from app.db.query import Query
from app.training.quality.index import ProgressFn, no_progress, vector_parts

Mode = Literal["all", "distinct", "leakage"]
# The filters that make each kind of neighbour search: "all" pairs every example with its k nearest others;
# "distinct" skips examples with the same text_hash (they are exact duplicates, reported as such) and asks only
# from the first example of each text_hash; "leakage" asks from validation and test examples for train neighbours.
_INNER = {
    "all": "AND x.id <> q.id",
    "distinct": "AND x.text_hash <> q.text_hash",
    "leakage": "AND x.split = 'train' AND x.text_hash <> q.text_hash",
}
_OUTER = {
    "all": "",
    "distinct": "AND NOT EXISTS (SELECT FROM memora.example o WHERE o.dataset_id = q.dataset_id "
    "AND o.text_hash = q.text_hash AND o.deleted_at IS NULL AND o.seq < q.seq)",
    "leakage": "AND q.split IN ('validation', 'test')",
}
# x's WHERE is the index's predicate and its ORDER BY the index's expression, so the planner can use the index.
_NEIGHBOURS = """
    SELECT q.id AS a, q.seq AS a_seq, q.split AS a_split, n.id AS b, n.seq AS b_seq, 1 - n.distance AS similarity
    FROM memora.example q
    CROSS JOIN LATERAL (
        SELECT x.id, x.seq, x.embedding::{vec} {dist} q.embedding::{vec} AS distance
        FROM memora.example x
        WHERE x.dataset_id = {d} AND {ndims}(x.embedding) = {dims} AND x.deleted_at IS NULL {inner}
        ORDER BY x.embedding::{vec} {dist} q.embedding::{vec}
        LIMIT %(k)s
    ) n
    WHERE q.dataset_id = {d} AND {ndims}(q.embedding) = {dims} AND q.deleted_at IS NULL
      AND q.seq > %(after)s AND q.seq <= %(upto)s {outer}
"""
_QUERIES = {
    mode: Query(_NEIGHBOURS.replace("{inner}", _INNER[mode]).replace("{outer}", _OUTER[mode])) for mode in _INNER
}
_SETTINGS = Query(
    "SELECT set_config('hnsw.ef_search', %(ef)s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true), "
    "set_config('enable_sort', 'off', true)"
)
_LAST_SEQ = Query("SELECT next_seq FROM memora.dataset WHERE id = %(d)s")


def neighbour_statement(conn: Connection, dataset_id: int, dimensions: int, mode: Mode) -> str:
    """The k-nearest-neighbours query of MODE (parameters k, after, upto: a window of query seqs), as text."""
    return _QUERIES[mode].sql(conn, **_slots(conn, dataset_id, dimensions))


def _slots(conn: Connection, dataset_id: int, dimensions: int) -> dict[str, sql.Composable]:
    return {"d": sql.Literal(int(dataset_id)), **vector_parts(conn, dimensions)}


def search_settings(conn: Connection, k: int) -> None:
    """Settings of the neighbour queries, for the rest of the transaction.

    ef_search bounds what one index scan returns; filtered scans go on (relaxed order) until k rows pass. Sorting is
    off, which leaves the index as the only way to the nearest rows: for a dataset of a few thousand examples the
    planner prices a scan and sort per query below the index, and n of them are the n² comparisons it avoids.
    """
    _SETTINGS.run(conn, {"ef": str(min(1000, max(40, 2 * k)))})


def neighbours(
    conn: Connection,
    dataset: Dataset,
    dimensions: int,
    mode: Mode,
    k: int,
    threshold: float,
    *,
    window: int = 256,
    progress: ProgressFn = no_progress,
) -> list[Any]:
    """Pairs (a, b, similarity) with similarity >= THRESHOLD among each query example's k nearest neighbours."""
    search_settings(conn, k)
    query, slots = _QUERIES[mode], _slots(conn, dataset.id, dimensions)
    last = int(_LAST_SEQ.run(conn, {"d": dataset.id}).scalar_one())
    pairs = []
    progress("searching", 0, last)
    for start in range(-1, last - 1, window):
        upto = min(start + window, last - 1)
        rows = query.run(conn, {"k": k, "after": start, "upto": upto}, **slots).all()
        pairs += [r for r in rows if not math.isnan(r.similarity) and r.similarity >= threshold]
        progress("searching", upto + 1, last)
    return pairs
