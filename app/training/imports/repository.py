"""The writes of an import: records staged with COPY into a temporary table, then one INSERT ... SELECT per batch
that drops what the dataset has already, numbers the rest from dataset.next_seq and assigns their split."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from app.db.models import Chunk, Collection, Document
from app.db.query import Query
from app.training.formats import hashing
from app.training.formats.records import COLUMNS, ExampleRow

SourceIds = tuple[int, int | None, int | None]  # collection, document, chunk

STAGED_COLUMNS = (
    "ord",
    *COLUMNS,
    "metadata",
    "token_count",
    "source_collection_id",
    "source_document_id",
    "source_chunk_id",
    "content_hash",
    "text_hash",
)

STAGE = Query("""
CREATE TEMP TABLE IF NOT EXISTS memora_import (
    ord bigint, format text, input jsonb, output jsonb, label text, labels text[], input_ids integer[],
    attention_mask integer[], token_type_ids integer[], start_positions integer[], end_positions integer[],
    metadata jsonb, token_count integer, source_collection_id bigint, source_document_id bigint,
    source_chunk_id bigint, content_hash bytea, text_hash bytea
) ON COMMIT DROP;
TRUNCATE memora_import
""")

# One batch from the stage into the dataset. New content only (a live example with the same content_hash makes
# a record a duplicate, and so does an earlier one of the batch); a tombstone with that content comes back to life.
INSERT = Query("""
WITH fresh AS (
    SELECT DISTINCT ON (s.content_hash) s.*
    FROM memora_import s
    -- One index probe per record (LIMIT 1 keeps it a nested loop): a NOT EXISTS became a hash anti join that read
    -- every example of the dataset once per batch, and made an import slower with every batch.
    LEFT JOIN LATERAL (
        SELECT 1 AS found FROM memora.example e
        WHERE e.dataset_id = %(dataset)s AND e.content_hash = s.content_hash AND e.deleted_at IS NULL
        LIMIT 1
    ) live ON true
    WHERE live.found IS NULL
    ORDER BY s.content_hash, s.ord
), numbered AS (
    SELECT *, row_number() OVER (ORDER BY ord) - 1 AS i FROM fresh
), reserved AS (
    UPDATE memora.dataset SET next_seq = next_seq + (SELECT count(*) FROM numbered)
    WHERE id = %(dataset)s
    RETURNING next_seq - (SELECT count(*) FROM numbered) AS base, split_seed, split_ratios
)
INSERT INTO memora.example AS e (
    dataset_id, seq, format, split, input, output, label, labels, input_ids, attention_mask, token_type_ids,
    start_positions, end_positions, metadata, token_count, content_hash, text_hash,
    source_collection_id, source_document_id, source_chunk_id
)
SELECT %(dataset)s, r.base + n.i, n.format,
       -- An exact twin of a live example (same text_hash) joins its split, whatever rule placed that one.
       coalesce((SELECT t.split FROM memora.example t
                 WHERE t.dataset_id = %(dataset)s AND t.text_hash = n.text_hash AND t.deleted_at IS NULL LIMIT 1),
                memora.split_of(n.text_hash, r.split_seed, r.split_ratios)),
       n.input, n.output,
       n.label, n.labels, n.input_ids, n.attention_mask, n.token_type_ids, n.start_positions, n.end_positions,
       n.metadata, n.token_count, n.content_hash, n.text_hash,
       n.source_collection_id, n.source_document_id, n.source_chunk_id
FROM numbered n CROSS JOIN reserved r
ON CONFLICT (dataset_id, content_hash) DO UPDATE SET deleted_at = NULL WHERE e.deleted_at IS NOT NULL
""")


_COPY = Query(f"COPY memora_import ({', '.join(STAGED_COLUMNS)}) FROM STDIN")
_CLEAR = Query("TRUNCATE memora_import")


class Writer:
    """A thread that writes batches (COPY into the stage, then the INSERT) on the import's connection, so that
    parsing in Python and inserting in PostgreSQL overlap. Nothing else uses the connection meanwhile, except the
    rare provenance lookup, which psycopg's connection lock serialises. The statements are made for CONN's schema
    here, in the importing thread; the writer thread runs them on the driver's connection."""

    def __init__(self, conn: Connection, dataset_id: int) -> None:
        self._driver: Any = conn.connection.driver_connection
        self._copy, self._insert, self._clear = (q.sql(conn) for q in (_COPY, INSERT, _CLEAR))
        self._dataset_id = dataset_id
        self._queue: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self.stored = 0
        self._thread = threading.Thread(target=self._run, name="memora-import-writer", daemon=True)
        self._thread.start()

    def put(self, batch: list[bytes]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def close(self) -> int:
        """Wait for the batches in hand; the number of examples stored."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.stored

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so that put() never blocks forever
            try:
                with self._driver.cursor() as cursor:
                    with cursor.copy(self._copy) as copy:
                        copy.write(b"\n".join(batch) + b"\n")
                    cursor.execute(self._insert, {"dataset": self._dataset_id})
                    self.stored += cursor.rowcount
                    cursor.execute(self._clear)
            except BaseException as exc:  # handed to the importing thread
                self._error = exc


def chunk_document(db: Session, collection_id: int, chunk_id: int) -> int | None:
    return db.scalar(select(Chunk.document_id).where(Chunk.collection_id == collection_id, Chunk.id == chunk_id))


def lookup_source(db: Session, collection: str, external_id: str | None) -> tuple[int, int | None] | None:
    collection_id = db.scalar(select(Collection.id).where(Collection.name == collection))
    if collection_id is None:
        return None
    if external_id is None:
        return collection_id, None
    document_id = db.scalar(
        select(Document.id).where(Document.collection_id == collection_id, Document.external_id == external_id)
    )
    return None if document_id is None else (collection_id, document_id)


# COPY's text format: a tab between columns, \N for NULL, and backslash escapes for \\ \n \r \t in values.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_ARRAY_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _text(value: str | None) -> str:
    return "\\N" if value is None else value.translate(_COPY_ESCAPES)


def _json(value: Any) -> str:
    # JSON text has no raw newline, carriage return or tab: only its backslashes need doubling.
    return "\\N" if value is None else _dumps(value).replace("\\", "\\\\")


def _ints(values: list[int] | None) -> str:
    return "\\N" if values is None else "{" + ",".join(map(str, values)) + "}"


def _strings(values: list[str] | None) -> str:
    if values is None:
        return "\\N"
    return _text("{" + ",".join(f'"{v.translate(_ARRAY_ESCAPES)}"' for v in values) + "}")


def stage_line(ord_: int, row: ExampleRow, source: SourceIds | None) -> str:
    """One line of the stage's COPY, built here (in the parsing thread) so the writer only sends bytes."""
    ids = source or (None, None, None)
    return "\t".join(
        (
            str(ord_),
            row.format,
            _json(row.input),
            _json(row.output),
            _text(row.label),
            _strings(row.labels),
            _ints(row.input_ids),
            _ints(row.attention_mask),
            _ints(row.token_type_ids),
            _ints(row.start_positions),
            _ints(row.end_positions),
            _json(row.metadata),
            "\\N" if row.token_count is None else str(row.token_count),
            *("\\N" if i is None else str(i) for i in ids),
            "\\\\x" + hashing.content_hash(row).hex(),
            "\\\\x" + hashing.text_hash(row).hex(),
        )
    )
