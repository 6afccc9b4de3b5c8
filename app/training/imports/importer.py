"""Examples in, by the hundred thousand: read JSONL, CSV or SQuAD JSON as a stream, validate every record, and
write the good ones with COPY, all in one transaction.

Records are validated in Python (app/training/formats/records.py) and staged in batches in a temporary table; one
INSERT ... SELECT per batch hashes them in SQL (memora.example_hash, memora.text_hash: the same functions a psql
user's INSERT runs), drops the ones the dataset has already, numbers the rest from dataset.next_seq and assigns
their split. In strict mode the first bad record stops the writing (the rest are still read, so the report names
every problem) and the import's savepoint is rolled back: the dataset is left exactly as it was.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sqlalchemy.orm import Session

from app.db.models import Dataset
from app.db.storable import unstorable
from app.errors import InvalidInputError
from app.training.formats import tokens
from app.training.formats.records import ExampleRow, Problem, parse_record
from app.training.imports import repository
from app.training.imports.repository import SourceIds, Writer, stage_line
from app.training.imports.schemas import ImportReport, TokenStats

BATCH = 5_000
MAX_PROBLEMS = 1_000


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
        self._writer: Writer | None = None
        self._sources: dict[tuple[str, str | None], tuple[int, int | None] | None] = {}
        self._savepoint = db.begin_nested()
        repository.STAGE.run(db)

    def add(self, records: Iterable[tuple[int | None, str, Any]]) -> None:
        """Records as (line, field prefix, parsed JSON or a Problem for a line that could not be parsed)."""
        for line, prefix, record in records:
            self.received += 1
            if isinstance(record, Problem):
                self._reject([record])
                continue
            if reason := unstorable(record):  # before parsing, which encodes text and walks nested values
                self._reject([Problem(line, prefix, reason)])
                continue
            parsed = parse_record(record, self.format, line=line, model=self.model)
            if isinstance(parsed, list):
                self._reject([_prefixed(p, prefix) for p in parsed])
                continue
            source = self._source(parsed, line, prefix)
            if isinstance(source, Problem):
                self._reject([source])
                continue
            try:
                line_text = stage_line(self.received, parsed, source)
                staged = line_text.encode()
            except ValueError:  # NaN or Infinity (json.loads reads them), or a lone surrogate
                line_text, staged = "", b""
            if not staged or ("u0000" in line_text and unstorable(record)):
                reason = unstorable(record) or "cannot be stored"
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
            self._writer = Writer(self.db.connection(), self.dataset.id)
        self._writer.put(self._batch)
        self._batch = []

    def _source(self, row: ExampleRow, line: int | None, prefix: str) -> SourceIds | Problem | None:
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
            self._sources[key] = repository.lookup_source(self.db, collection, external_id)
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


def _prefixed(problem: Problem, prefix: str) -> Problem:
    if not prefix:
        return problem
    return Problem(problem.line, f"{prefix}.{problem.field}" if problem.field else prefix, problem.reason)


def _describe(problem: Problem) -> str:
    where = f"line {problem.line}" if problem.line is not None else ""
    if problem.field:
        where = f"{where}, {problem.field}" if where else problem.field
    return f"{where}: {problem.reason}" if where else problem.reason
