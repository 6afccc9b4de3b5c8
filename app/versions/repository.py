"""The SQL of embedding versions: the backfill's claims and batches, and what a version holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection

from app.db.query import Query


@dataclass(frozen=True)
class ClaimedVersion:
    """A version a worker holds the backfill lease of, with what it needs to embed for it."""

    collection_id: int
    number: int
    provider: str
    model: str
    dimensions: int
    after: int  # the backfill's place: chunks with a greater id are the ones still to look at
    same_model: tuple[int, ...] = ()  # other versions of the same model, whose vectors it copies rather than embed


@dataclass(frozen=True)
class MissingChunk:
    id: int
    content_hash: bytes
    title: str
    text: str


# The version building longest ago whose lease is free (or already this worker's), leased for LEASE, with the other
# versions of its model (a new metric, storage, index or adapter needs no new vectors, only a copy).
_CLAIM = Query("""
UPDATE memora.embedding_version v
SET leased_by = %(worker)s, lease_until = now() + %(lease)s
FROM (
    SELECT collection_id, number FROM memora.embedding_version
    WHERE status = 'building' AND source = 'worker'
      AND (lease_until IS NULL OR lease_until < now() OR leased_by = %(worker)s)
    ORDER BY created_at, collection_id, number
    LIMIT 1
    FOR UPDATE SKIP LOCKED
) free
WHERE v.collection_id = free.collection_id AND v.number = free.number
RETURNING v.collection_id, v.number, v.embedding_provider, v.embedding_model, v.dimensions, v.backfill_after,
    ARRAY(SELECT s.number FROM memora.embedding_version s
          WHERE s.collection_id = v.collection_id AND s.number <> v.number
            AND (s.embedding_provider, s.embedding_model, s.dimensions)
                = (v.embedding_provider, v.embedding_model, v.dimensions)) AS same_model
""")

# The next chunks after AFTER that lack a vector in the version: a range of the chunk key, each probed in the
# version's own table by its key.
_MISSING = Query("""
SELECT ch.id, ch.content_hash, ch.title, ch.text
FROM memora.chunk ch
WHERE ch.collection_id = %(c)s AND ch.id > %(after)s
  AND NOT EXISTS (SELECT FROM memora.embedding e
                  WHERE e.collection_id = %(c)s AND e.chunk_id = ch.id AND e.version = %(v)s)
ORDER BY ch.id
LIMIT %(limit)s
""")

# Rows go through a stage shaped like memora.embedding (binary COPY, as the worker writes vectors), then into it.
_STAGE = Query("CREATE TEMP TABLE IF NOT EXISTS backfill_stage (LIKE memora.embedding INCLUDING DEFAULTS) "
               "ON COMMIT DELETE ROWS")  # fmt: skip
_COPY_STAGE = Query(
    "COPY pg_temp.backfill_stage (collection_id, chunk_id, version, model, embedding) FROM STDIN (FORMAT BINARY)"
)
# Chunks deleted since they were read drop out; a vector the worker wrote meanwhile stays.
_WRITE = Query("""
INSERT INTO memora.embedding (collection_id, chunk_id, version, model, embedding)
SELECT s.collection_id, s.chunk_id, s.version, s.model, s.embedding
FROM pg_temp.backfill_stage s
JOIN memora.chunk ch ON ch.collection_id = s.collection_id AND ch.id = s.chunk_id
FOR KEY SHARE OF ch
ON CONFLICT DO NOTHING
""")
_ADVANCE = Query("""
UPDATE memora.embedding_version SET backfill_after = %(after)s, error = NULL
WHERE collection_id = %(c)s AND number = %(v)s AND leased_by = %(worker)s AND backfill_after = %(from)s
""")
# Chunk writers hold the collection's row (the worker FOR SHARE as it writes vectors, a document's insert FOR KEY
# SHARE): with the row locked, the count below, a statement of its own, sees every chunk they committed.
_QUIET = Query("SELECT FROM memora.collection WHERE id = %(c)s FOR UPDATE SKIP LOCKED")
# Done once nothing is missing from the start: then ready, and the lease is let go.
_FINISH = Query("""
UPDATE memora.embedding_version v SET status = 'ready', leased_by = NULL, lease_until = NULL, error = NULL
WHERE v.collection_id = %(c)s AND v.number = %(v)s AND v.leased_by = %(worker)s
  AND NOT EXISTS (SELECT FROM memora.chunk ch
                  WHERE ch.collection_id = %(c)s
                    AND NOT EXISTS (SELECT FROM memora.embedding e
                                    WHERE e.collection_id = %(c)s AND e.chunk_id = ch.id AND e.version = %(v)s))
""")
# A version made to take over when ready does, in the same transaction (the collection's row is held already).
_TAKE_OVER = Query("""
UPDATE memora.collection c SET active_version = v.number
FROM memora.embedding_version v
WHERE c.id = %(c)s AND v.collection_id = c.id AND v.number = %(v)s AND v.activate_when_ready
  AND c.active_version <> v.number
""")
_RESTART = Query("""
UPDATE memora.embedding_version SET backfill_after = 0
WHERE collection_id = %(c)s AND number = %(v)s AND leased_by = %(worker)s
""")
_FAIL = Query("""
UPDATE memora.embedding_version
SET status = CASE WHEN %(permanent)s THEN 'failed' ELSE status END, error = %(error)s, leased_by = NULL,
    lease_until = CASE WHEN %(permanent)s THEN NULL ELSE now() + %(retry_in)s END
WHERE collection_id = %(c)s AND number = %(v)s AND leased_by = %(worker)s
""")


def claim(conn: Connection, worker: str, lease: timedelta) -> ClaimedVersion | None:
    """Lease the version that has waited longest for its vectors, if any."""
    row = _CLAIM.run(conn, {"worker": worker, "lease": lease}).first()
    if row is None:
        return None
    collection_id, number, provider, model, dimensions, after, same_model = tuple(row)
    return ClaimedVersion(collection_id, number, provider, model, dimensions, after, tuple(same_model))


def missing(conn: Connection, version: ClaimedVersion, after: int, limit: int) -> list[MissingChunk]:
    """Up to LIMIT chunks after chunk id AFTER that lack a vector in VERSION, in id order."""
    params = {"c": version.collection_id, "v": version.number, "after": after, "limit": limit}
    return [MissingChunk(*tuple(row)) for row in _MISSING.run(conn, params)]


def write(conn: Connection, version: ClaimedVersion, rows: Sequence[tuple[int, np.ndarray[Any, Any]]]) -> None:
    """Store (chunk id, vector) ROWS in VERSION, skipping chunks gone meanwhile and vectors written meanwhile."""
    _STAGE.run(conn)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(_COPY_STAGE.sql(conn)) as copy:
        copy.set_types(["int8", "int8", "int4", "text", "vector"])
        for chunk_id, vector in rows:
            copy.write_row((version.collection_id, chunk_id, version.number, version.model, vector))
    _WRITE.run(conn)


def advance(conn: Connection, version: ClaimedVersion, worker: str, after: int) -> None:
    """Move VERSION's place on to chunk id AFTER, unless new chunks moved it back meanwhile."""
    params = {"c": version.collection_id, "v": version.number, "worker": worker, "after": after, "from": version.after}
    _ADVANCE.run(conn, params)


def finish(conn: Connection, version: ClaimedVersion, worker: str) -> bool | None:
    """Mark VERSION ready if no chunk lacks its vector (True), and active if it was made to take over; else start
    its backfill over from the first chunk (False). None while chunks are being written: try again later."""
    params = {"c": version.collection_id, "v": version.number, "worker": worker}
    if _QUIET.run(conn, params).first() is None:
        return None
    if _FINISH.run(conn, params).rowcount:
        _TAKE_OVER.run(conn, params)
        return True
    _RESTART.run(conn, params)
    return False


def fail(
    conn: Connection, version: ClaimedVersion, worker: str, error: str, *, permanent: bool, retry_in: timedelta
) -> None:
    """Give VERSION back after an error: failed for good if PERMANENT, else tried again after RETRY_IN."""
    params = {"c": version.collection_id, "v": version.number, "worker": worker, "error": error[:4000],
              "permanent": permanent, "retry_in": retry_in}  # fmt: skip
    _FAIL.run(conn, params)
