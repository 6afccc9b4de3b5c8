"""Examples in, by the hundred thousand: read JSONL, CSV or SQuAD JSON as a stream, validate every record, and
write the good ones with COPY, all in one transaction.

Records are validated in Python (app/training/formats.py) and staged in batches in a temporary table; one
INSERT ... SELECT per batch hashes them in SQL (memora.example_hash, memora.text_hash: the same functions a psql
user's INSERT runs), drops the ones the dataset has already, numbers the rest from dataset.next_seq and assigns
their split. In strict mode the first bad record stops the writing (the rest are still read, so the report names
every problem) and the import's savepoint is rolled back: the dataset is left exactly as it was.
"""

from __future__ import annotations

import json
import queue
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.engine import compose
from app.db.models import Collection, Dataset, Document
from app.db.storable import unstorable
from app.errors import InvalidInputError
from app.training import formats, hashing, repository, tokens
from app.training.formats import ExampleRow, Problem
from app.training.schemas import ImportReport, TokenStats

_SourceIds = tuple[int, int | None, int | None]  # collection, document, chunk
BATCH = 5_000
MAX_PROBLEMS = 1_000


_COLUMNS = (
    "ord",
    *formats.COLUMNS,
    "metadata",
    "token_count",
    "source_collection_id",
    "source_document_id",
    "source_chunk_id",
    "content_hash",
    "text_hash",
)

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS memora_import (
    ord bigint, format text, input jsonb, output jsonb, label text, labels text[], input_ids integer[],
    attention_mask integer[], token_type_ids integer[], start_positions integer[], end_positions integer[],
    metadata jsonb, token_count integer, source_collection_id bigint, source_document_id bigint,
    source_chunk_id bigint, content_hash bytea, text_hash bytea
) ON COMMIT DROP;
TRUNCATE memora_import
"""

# One batch from the stage into the dataset. New content only (a live example with the same content_hash makes
# a record a duplicate, and so does an earlier one of the batch); a tombstone with that content comes back to life.
_INSERT = """
WITH fresh AS (
    SELECT DISTINCT ON (s.content_hash) s.*
    FROM memora_import s
    -- One index probe per record (LIMIT 1 keeps it a nested loop): a NOT EXISTS became a hash anti join that read
    -- every example of the dataset once per batch, and made an import slower with every batch.
    LEFT JOIN LATERAL (
        SELECT 1 AS found FROM {} e
        WHERE e.dataset_id = %(dataset)s AND e.content_hash = s.content_hash AND e.deleted_at IS NULL
        LIMIT 1
    ) live ON true
    WHERE live.found IS NULL
    ORDER BY s.content_hash, s.ord
), numbered AS (
    SELECT *, row_number() OVER (ORDER BY ord) - 1 AS i FROM fresh
), reserved AS (
    UPDATE {} SET next_seq = next_seq + (SELECT count(*) FROM numbered)
    WHERE id = %(dataset)s
    RETURNING next_seq - (SELECT count(*) FROM numbered) AS base, split_seed, split_ratios
)
INSERT INTO {} AS e (
    dataset_id, seq, format, split, input, output, label, labels, input_ids, attention_mask, token_type_ids,
    start_positions, end_positions, metadata, token_count, content_hash, text_hash,
    source_collection_id, source_document_id, source_chunk_id
)
SELECT %(dataset)s, r.base + n.i, n.format,
       -- An exact twin of a live example (same text_hash) joins its split, whatever rule placed that one.
       coalesce((SELECT t.split FROM {} t
                 WHERE t.dataset_id = %(dataset)s AND t.text_hash = n.text_hash AND t.deleted_at IS NULL LIMIT 1),
                {}(n.text_hash, r.split_seed, r.split_ratios)),
       n.input, n.output,
       n.label, n.labels, n.input_ids, n.attention_mask, n.token_type_ids, n.start_positions, n.end_positions,
       n.metadata, n.token_count, n.content_hash, n.text_hash,
       n.source_collection_id, n.source_document_id, n.source_chunk_id
FROM numbered n CROSS JOIN reserved r
ON CONFLICT (dataset_id, content_hash) DO UPDATE SET deleted_at = NULL WHERE e.deleted_at IS NOT NULL
"""


@dataclass
class _Tally:
    """What the valid records add up to, kept in constant memory per record (an int32 per token count)."""

    formats: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    token_counts: array[int] = field(default_factory=lambda: array("i"))

    def add(self, row: ExampleRow) -> None:
        self.formats[row.format] += 1
        if row.label is not None:
            self.labels[row.label] += 1
        for label in row.labels or ():
            self.labels[label] += 1
        if row.token_count is not None:
            self.token_counts.append(row.token_count)

    def token_stats(self) -> TokenStats | None:
        if not self.token_counts:
            return None
        counts = np.frombuffer(self.token_counts, dtype=np.int32)
        return TokenStats(
            min=int(counts.min()),
            mean=round(float(counts.mean()), 1),
            p95=int(np.percentile(counts, 95, method="nearest")),
            max=int(counts.max()),
        )


class Importer:
    """Validate and store records into one dataset; feed it with add(), then call finish() for the report."""

    def __init__(
        self,
        db: Session,
        dataset: Dataset,
        *,
        mode: Literal["strict", "skip"] = "skip",
        format: str | None = None,
        model: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.db, self.dataset, self.mode, self.format, self.model = db, dataset, mode, format, model
        self.progress = progress
        self.received = self.stored = self.invalid = self.problems_total = 0
        self.problems: list[Problem] = []
        self.tally = _Tally()
        self._batch: list[bytes] = []
        self._writer: _Writer | None = None
        self._sources: dict[tuple[str, str | None], tuple[int, int | None] | None] = {}
        self._savepoint = db.begin_nested()
        conn = db.connection()
        self._driver = conn.connection.driver_connection
        self._insert = compose(conn, _INSERT, "example", "dataset", "example", "example", "split_of")
        conn.exec_driver_sql(_STAGE)

    def add(self, records: Iterable[tuple[int | None, str, Any]]) -> None:
        """Records as (line, field prefix, parsed JSON or a Problem for a line that could not be parsed)."""
        for line, prefix, record in records:
            self.received += 1
            if isinstance(record, Problem):
                self._reject([record])
                continue
            parsed = formats.parse_record(record, self.format, line=line, model=self.model)
            if isinstance(parsed, list):
                self._reject([_prefixed(p, prefix) for p in parsed])
                continue
            source = self._source(parsed, line, prefix)
            if isinstance(source, Problem):
                self._reject([source])
                continue
            try:
                line_text = _stage_line(self.received, parsed, source)
                staged = line_text.encode()
            except ValueError:  # NaN or Infinity (json.loads reads them), or a lone surrogate
                line_text, staged = "", b""
            if not staged or ("u0000" in line_text and unstorable(record)):
                reason = unstorable(record) or "holds NaN or Infinity, which JSON in PostgreSQL cannot store"
                self._reject([Problem(line, prefix, reason)])
                continue
            self.tally.add(parsed)
            if self.mode == "strict" and self.invalid:
                continue  # nothing more will be stored; keep reading to report every problem
            self._batch.append(staged)
            if len(self._batch) >= BATCH:
                self._flush()
            if self.progress is not None and self.received % 1000 == 0:
                self.progress(1000)

    def finish(self) -> ImportReport:
        """Write what is left and commit the import's savepoint, or roll it back: in strict mode when any record
        was bad (the report then comes back as a 422)."""
        failed = self.mode == "strict" and self.invalid > 0
        if not failed:
            self._flush()
        if self._writer is not None:
            self.stored = self._writer.close()  # re-raises what went wrong in the writer
        if failed or (self.received and self.invalid == self.received):
            self._savepoint.rollback()
        else:
            self._savepoint.commit()
        report = self.report()
        if failed:
            raise InvalidInputError(
                f"{self.invalid} of {self.received} records are invalid; strict mode stored none "
                f"(first: {_describe(self.problems[0])})",
                details=report.model_dump(),
            )
        if self.received and self.invalid == self.received:
            raise InvalidInputError(
                f"none of the {self.received} records is valid (first: {_describe(self.problems[0])})",
                details=report.model_dump(),
            )
        return report

    def report(self) -> ImportReport:
        stored = 0 if (self.mode == "strict" and self.invalid) else self.stored
        valid = self.received - self.invalid
        epoch = int(np.frombuffer(self.tally.token_counts, dtype=np.int32).sum(dtype=np.int64))
        return ImportReport(
            mode=self.mode,
            received=self.received,
            stored=stored,
            duplicates=valid - self.stored if not (self.mode == "strict" and self.invalid) else 0,
            invalid=self.invalid,
            problems=[p.to_dict() for p in self.problems],
            problems_total=self.problems_total,
            formats=dict(self.tally.formats),
            label_counts=dict(self.tally.labels.most_common()),
            tokens=self.tally.token_stats(),
            estimated_epoch_tokens=epoch,
            token_counts_exact=tokens.EXACT,
        )

    def _reject(self, problems: list[Problem]) -> None:
        self.invalid += 1
        self.problems_total += len(problems)
        room = MAX_PROBLEMS - len(self.problems)
        if room > 0:
            self.problems += problems[:room]

    def _flush(self) -> None:
        """Hand the batch to the writer thread, which stages and inserts it while this one parses the next."""
        if not self._batch:
            return
        if self._writer is None:
            self._writer = _Writer(self._driver, self._insert, self.dataset.id)
        self._writer.put(self._batch)
        self._batch = []

    def _source(
        self, row: ExampleRow, line: int | None, prefix: str
    ) -> tuple[int, int | None, int | None] | Problem | None:
        """The (collection, document, chunk) ids a record's "source" names: {"collection", "external_id"?,
        "chunk_id"?}."""
        if row.source is None:
            return None
        where = f"{prefix}.source" if prefix else "source"
        collection, external_id, chunk_id = (row.source.get(k) for k in ("collection", "external_id", "chunk_id"))
        if not isinstance(collection, str):
            return Problem(line, f"{where}.collection", "is required (the name of a collection) and must be a string")
        if external_id is not None and not isinstance(external_id, str):
            return Problem(line, f"{where}.external_id", "must be a string")
        if chunk_id is not None and (not isinstance(chunk_id, int) or isinstance(chunk_id, bool)):
            return Problem(line, f"{where}.chunk_id", "must be an integer")
        key = (collection, external_id)
        if key not in self._sources:
            self._sources[key] = _lookup_source(self.db, collection, external_id)
        found = self._sources[key]
        if found is None:
            what = f"document {external_id!r} in " if external_id is not None else ""
            return Problem(line, f"{where}", f"there is no {what}collection {collection!r}")
        collection_id, document_id = found
        if chunk_id is not None:
            chunk_document = repository.chunk_document(self.db, collection_id, chunk_id)
            if chunk_document is None or (document_id is not None and chunk_document != document_id):
                return Problem(
                    line,
                    f"{where}.chunk_id",
                    f"there is no chunk {chunk_id} in that {'document' if document_id else 'collection'}",
                )
            document_id = chunk_document
        return collection_id, document_id, chunk_id


class _Writer:
    """A thread that writes batches (COPY into the stage, then the INSERT) on the import's connection, so that
    parsing in Python and inserting in PostgreSQL overlap. Nothing else uses the connection meanwhile, except the
    rare provenance lookup, which psycopg's connection lock serialises."""

    def __init__(self, driver: Any, insert: str, dataset_id: int) -> None:
        self._driver, self._insert, self._dataset_id = driver, insert, dataset_id
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
                    with cursor.copy(f"COPY memora_import ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                        copy.write(b"\n".join(batch) + b"\n")
                    cursor.execute(self._insert, {"dataset": self._dataset_id})
                    self.stored += cursor.rowcount
                    cursor.execute("TRUNCATE memora_import")
            except BaseException as exc:  # handed to the importing thread
                self._error = exc


def _lookup_source(db: Session, collection: str, external_id: str | None) -> tuple[int, int | None] | None:
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


def _stage_line(ord_: int, row: ExampleRow, source: _SourceIds | None) -> str:
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


def _prefixed(problem: Problem, prefix: str) -> Problem:
    if not prefix:
        return problem
    return Problem(problem.line, f"{prefix}.{problem.field}" if problem.field else prefix, problem.reason)


def _describe(problem: Problem) -> str:
    where = f"line {problem.line}" if problem.line is not None else ""
    if problem.field:
        where = f"{where}, {problem.field}" if where else problem.field
    return f"{where}: {problem.reason}" if where else problem.reason
