"""The reads of an export: its examples in seq order, from the live dataset or from a snapshot (with the split it
froze), by COPY (openai-chat and jsonl) or through a server-side cursor (the rest), never all at once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.db.query import Query
from app.training.exports.lines import CHAT_KEYS

CURSOR_ROWS = 2_000

# What a row of the source gives the Python writers (and records.to_record / training_messages).
COLUMNS = (
    "SELECT e.id, {split} AS split, e.format, e.input, e.output, e.label, e.labels, e.input_ids, e.attention_mask, "
    "e.token_type_ids, e.start_positions, e.end_positions, e.metadata"
)
# A qa question without an answer (SQuAD 2.0's is_impossible) has no assistant turn, so no chat form.
UNANSWERED = "(e.format = 'qa' AND jsonb_array_length(e.output -> 'answers' -> 'text') = 0)"
# The same row as JSON text, for the rows of a COPY that Python writes (after a \x03 marker).
ROW_JSON = (
    "E'\\x03' || json_build_object('id', e.id, 'split', {split}, 'format', e.format, 'input', e.input, "
    "'output', e.output, 'label', e.label, 'labels', e.labels, 'input_ids', e.input_ids, "
    "'attention_mask', e.attention_mask, 'token_type_ids', e.token_type_ids, "
    "'start_positions', e.start_positions, 'end_positions', e.end_positions, 'metadata', e.metadata)::text"
)
# The openai-chat line of a chat example, byte for byte what lines.chat_line() prints: jsonb's text of a value uses
# json.dumps' separators, and Python reads an object's keys from jsonb in the order jsonb prints them.
CHAT_LINE = (
    "'{\"messages\": ' || (e.input -> 'messages')::text"
    + "".join(
        f" || CASE WHEN e.input -> '{key}' <> 'null' THEN ', \"{key}\": ' || (e.input -> '{key}')::text ELSE '' END"
        for key in CHAT_KEYS
    )
    + " || '}'"
)
# The jsonl line of a chat example: records.to_record gives its input, with its metadata when it has any.
CHAT_RECORD = (
    "CASE WHEN e.metadata = '{}' THEN e.input::text ELSE left(e.input::text, -1) || ', \"metadata\": ' "
    "|| e.metadata::text || '}' END"
)
# COPY's csv format quotes nothing in one column of JSON text: it has no control characters, so no \x01 or \x02.
_COPY = "COPY (SELECT CASE WHEN e.format = 'chat' THEN {line} ELSE " + ROW_JSON.replace("{split}", "{{split}}") + " END"
_COPY_END = "ORDER BY {order}) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
_UNSORTED = Query("SET LOCAL enable_sort = off")

# One round trip for a batch of anchors: memora.search_hybrid_v1 for each, with each hit's cosine similarity to
# its example's positive (from the vector stored for the hit in the collection's active embedding version).
NEGATIVE_CANDIDATES = Query("""
SELECT q.i, h.text, 1 - (v.embedding <=> q.positive) AS positive_cosine
FROM unnest(%(queries)s::text[], %(embeddings)s::vector[], %(positives)s::vector[])
     WITH ORDINALITY AS q(query, embedding, positive, i)
CROSS JOIN LATERAL memora.search_hybrid_v1(%(collection)s, q.query, q.embedding, %(k)s::integer) WITH ORDINALITY AS h
LEFT JOIN memora.embedding v
       ON v.collection_id = %(collection_id)s AND v.chunk_id = h.chunk_id AND v.version = %(version)s
ORDER BY q.i, h.ordinality
""")


@dataclass(frozen=True, slots=True)
class Source:
    """The examples an export reads: a dataset's live ones or a snapshot's, of one split or all, with or without
    the qa examples that have no answer."""

    dataset_id: int
    snapshot_id: int | None
    split: str | None
    answered_only: bool = False

    def statement(self, head: str, tail: str = "ORDER BY {order}") -> tuple[Query, dict[str, Any]]:
        """HEAD FROM the source's rows WHERE ... TAIL; {split} and {order} in HEAD and TAIL are the split column
        and the seq order of the source."""
        params: dict[str, Any] = {"dataset": self.dataset_id, "snapshot": self.snapshot_id, "split": self.split}
        if self.snapshot_id is None:
            split, order = "e.split", "e.seq"
            where = "FROM memora.example e WHERE e.dataset_id = %(dataset)s AND e.deleted_at IS NULL"
        else:
            split, order = "s.split", "s.seq"
            where = (
                "FROM memora.snapshot_example s JOIN memora.example e ON e.dataset_id = s.dataset_id "
                "AND e.id = s.example_id WHERE s.snapshot_id = %(snapshot)s"
            )
        if self.split is not None:
            where += f" AND {split} = %(split)s"
        if self.answered_only:
            where += f" AND NOT {UNANSWERED}"
        return Query(f"{head} {where} {tail}".replace("{split}", split).replace("{order}", order)), params


def unsorted(db: Session) -> None:
    """For the rest of the transaction: no sort, so rows stream in the order of an index from the first one instead
    of being sorted (spilling on a large dataset) first. The statement timeout is the caller's: the API's is
    MEMORA_EXPORT_STATEMENT_TIMEOUT_MS (none by default, an export may rightly take long), the CLI has none."""
    _UNSORTED.run(db)


def format_counts(db: Session, source: Source) -> list[Row[Any]]:
    """(format, n, unanswered) of the source's examples."""
    head = f"SELECT e.format, count(*) AS n, count(*) FILTER (WHERE {UNANSWERED}) AS unanswered"
    query, params = source.statement(head, "GROUP BY e.format")
    return list(query.run(db, params).all())


def custom_keys(db: Session, source: Source) -> list[str]:
    """The keys of the source's custom records, sorted."""
    query, params = source.statement(
        "SELECT DISTINCT k.key FROM (SELECT e.input", "AND e.format = 'custom') e, jsonb_object_keys(e.input) k(key)"
    )
    return sorted(row.key for row in query.run(db, params))


def rows(db: Session, source: Source) -> Iterator[dict[str, Any]]:
    """The source's rows through a server-side cursor, CURSOR_ROWS at a time."""
    query, params = source.statement(COLUMNS)
    driver = db.connection().connection.driver_connection
    with driver.cursor(name="memora_export", row_factory=dict_row) as cursor:  # type: ignore[union-attr]
        cursor.execute(query.sql(db), params)
        while batch := cursor.fetchmany(CURSOR_ROWS):
            yield from batch


def copy(db: Session, source: Source, chat_line: str) -> Iterator[memoryview]:
    """The source as COPY rows: a chat example's line as CHAT_LINE (SQL) makes it, any other example as \\x03 and
    its row's JSON (ROW_JSON), for Python to write."""
    query, params = source.statement(_COPY.format(line=chat_line), _COPY_END)
    driver = db.connection().connection.driver_connection
    # COPY takes no bind parameters: psycopg merges them into the statement, quoted, on the client.
    with driver.cursor() as cursor, cursor.copy(query.sql(db), params) as stream:  # type: ignore[union-attr]
        yield from stream
