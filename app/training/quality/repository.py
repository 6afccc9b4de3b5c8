"""The queries of splits, duplicates and leakage over a dataset's live examples."""

from __future__ import annotations

from sqlalchemy import Connection

from app.db.query import Query

# A key's point: the bigint that memora.split_of divides by 2^56.
_POINT = "('x' || encode(substr(sha256(int4send(%(seed)s::int) || e.text_hash), 1, 7), 'hex'))::bit(56)::bigint"
# The stratum of an example: its label, or a multi-label example's first label; NULL groups the unlabeled.
_GROUP = "coalesce(e.label, (SELECT min(l) FROM unnest(e.labels) l))"

SPLIT_UNSTRATIFIED = Query("""
    UPDATE memora.example e SET split = memora.split_of(e.text_hash, %(seed)s, %(ratios)s::jsonb)
    WHERE e.dataset_id = %(dataset)s AND e.deleted_at IS NULL
      AND e.split IS DISTINCT FROM memora.split_of(e.text_hash, %(seed)s, %(ratios)s::jsonb)
""")

KEYS_PER_GROUP = Query(f"""
    SELECT g IS NULL AS unlabeled, coalesce(g, '') AS g, count(DISTINCT text_hash) AS keys
    FROM (
        SELECT {_GROUP} AS g, e.text_hash FROM memora.example e
        WHERE e.dataset_id = %(dataset)s AND e.deleted_at IS NULL
    ) x
    GROUP BY 1, 2
""")

# Each label's keys in order of their points, cut at the label's quotas (unnested from the parameters).
SPLIT_STRATIFIED = Query(f"""
    WITH keyed AS (
        SELECT e.id, {_GROUP} AS g, e.text_hash, {_POINT} AS u
        FROM memora.example e WHERE e.dataset_id = %(dataset)s AND e.deleted_at IS NULL
    ), ranked AS (
        SELECT id, g, dense_rank() OVER (PARTITION BY g ORDER BY u, text_hash) - 1 AS r FROM keyed
    ), assigned AS (
        SELECT r.id, CASE WHEN r.r < q.train THEN 'train' WHEN r.r < q.train + q.validation THEN 'validation'
                          ELSE 'test' END AS split
        FROM ranked r
        JOIN unnest(%(unlabeled)s::bool[], %(groups)s::text[], %(train)s::bigint[], %(validation)s::bigint[])
             AS q(unlabeled, g, train, validation)
          ON q.unlabeled = (r.g IS NULL) AND q.g = coalesce(r.g, '')
    )
    UPDATE memora.example e SET split = a.split
    FROM assigned a
    WHERE e.dataset_id = %(dataset)s AND e.id = a.id AND e.split IS DISTINCT FROM a.split
""")

SPLIT_COUNTS = Query(f"""
    SELECT CASE WHEN %(by_label)s THEN {_GROUP} END AS label, e.split, count(*) AS n
    FROM memora.example e WHERE e.dataset_id = %(dataset)s AND e.deleted_at IS NULL
    GROUP BY 1, 2
""")

EXACT_CLUSTERS = Query("""
    SELECT array_agg(id ORDER BY seq) AS ids, array_agg(seq ORDER BY seq) AS seqs
    FROM memora.example WHERE dataset_id = %(d)s AND deleted_at IS NULL
    GROUP BY text_hash HAVING count(*) > 1
    ORDER BY min(seq)
""")

# In id order: two requests locking overlapping examples wait for each other rather than deadlock.
LOCK_LIVE = Query("""
    SELECT id FROM memora.example
    WHERE dataset_id = %(d)s AND id = ANY(%(ids)s::bigint[]) AND deleted_at IS NULL
    ORDER BY id
    FOR UPDATE
""")

_TOMBSTONE = Query("""
    UPDATE memora.example e SET deleted_at = now()
    WHERE e.dataset_id = %(d)s AND e.id = ANY(%(ids)s) AND e.deleted_at IS NULL
      AND EXISTS (SELECT FROM memora.snapshot_example s WHERE s.dataset_id = e.dataset_id AND s.example_id = e.id)
""")
_DELETE = Query("DELETE FROM memora.example WHERE dataset_id = %(d)s AND id = ANY(%(ids)s) AND deleted_at IS NULL")

EXACT_CROSSINGS = Query("""
    SELECT t.id AS train_id, o.id AS other_id, o.split AS other_split
    FROM memora.example t JOIN memora.example o ON o.dataset_id = t.dataset_id AND o.text_hash = t.text_hash
    WHERE t.dataset_id = %(d)s AND t.split = 'train' AND t.deleted_at IS NULL
      AND o.split IN ('validation', 'test') AND o.deleted_at IS NULL
""")

EVALUATION_EXAMPLES = Query("""
    SELECT count(*) FROM memora.example
    WHERE dataset_id = %(d)s AND deleted_at IS NULL AND split IN ('validation', 'test')
""")


def remove(conn: Connection, dataset_id: int, example_ids: list[int]) -> tuple[int, int]:
    """Remove examples from the live dataset as datasets.service.remove_example does, in two statements: those a
    snapshot holds become tombstones, the rest are deleted. Returns (tombstoned, deleted)."""
    if not example_ids:
        return 0, 0
    params = {"d": dataset_id, "ids": example_ids}
    tombstoned = _TOMBSTONE.run(conn, params).rowcount
    deleted = _DELETE.run(conn, params).rowcount
    return int(tombstoned), int(deleted)
