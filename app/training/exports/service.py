"""Export a dataset or a snapshot as a training file, streamed in constant memory.

Formats: openai-chat (fine-tuning JSONL; also TRL's SFTTrainer), jsonl (the records as imported), parquet (for
Hugging Face datasets), csv (classification), pairs and triplets (sentence-transformers, with mined hard
negatives: negatives.py), openai-batch (Batch API requests). Rows are read in seq order (repository.py): openai-chat
and jsonl with one COPY in which PostgreSQL writes the line of every chat example itself, the others through a
server-side cursor. docs/training-export.md describes the files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from app.auth.access import check_collection
from app.auth.principal import OPEN, Principal
from app.config import Settings
from app.db import jsonb
from app.db.models import Collection, Dataset
from app.db.repository import get_named
from app.errors import InvalidInputError
from app.training.datasets import service as datasets
from app.training.datasets.schemas import SPLITS
from app.training.exports import EXPORT_FORMATS, lines, negatives, parquet, repository
from app.training.exports.lines import CHUNK_BYTES, Progress
from app.training.exports.repository import Source
from app.training.exports.schemas import Options
from app.training.formats import records
from app.training.snapshots import service as snapshots

BATCH_KINDS = ("chat", "embeddings")
CHAT_FORMATS = ("chat", "completion", "classification", "qa")
# The example formats each export takes; None: all of them.
ACCEPTS: dict[str, tuple[str, ...] | None] = {
    "openai-chat": CHAT_FORMATS,
    "jsonl": None,
    "parquet": None,
    "csv": ("classification",),
    "pairs": negatives.PAIR_FORMATS,
    "triplets": negatives.PAIR_FORMATS,
    "openai-batch": None,  # kind chat: CHAT_FORMATS
}
MEDIA_TYPES = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv; charset=utf-8"}
MINING_BATCH = 64


@dataclass
class Export:
    """A checked export: what it reads, how many examples, the file it makes."""

    dataset: Dataset
    options: Options
    source: Source
    collection: Collection | None
    counts: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # qa examples without an answer, left out of chat exports
    custom_keys: list[str] = field(default_factory=list)

    @property
    def format(self) -> str:
        assert self.options.format is not None
        return self.options.format

    @property
    def total(self) -> int:
        """Examples read (triplets make a line per negative of each)."""
        return sum(self.counts.values())

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES.get(self.format, "application/jsonl")

    @property
    def filename(self) -> str:
        stem = "-".join(p for p in (self.dataset.name, self.options.snapshot, self.options.split, self.format) if p)
        return f"{stem}.{'parquet' if self.format == 'parquet' else 'csv' if self.format == 'csv' else 'jsonl'}"

    def chunks(self, db: Session, settings: Settings, progress: Progress | None = None) -> Iterator[bytes]:
        """The file in blocks of about CHUNK_BYTES; PROGRESS is told how many examples each block holds.

        Everything that can fail on the export's options (the embedding model of the collection) fails here,
        before the first block."""
        repository.unsorted(db)
        tick = progress or (lambda n: None)
        if self.format in ("openai-chat", "jsonl"):
            return self._copy_blocks(db, tick)
        rows = repository.rows(db, self.source)
        if self.format == "parquet":
            return parquet.blocks(rows, self.counts, self.custom_keys, tick)
        if self.format == "csv":
            return lines.blocks(lines.csv_lines(rows, tick))
        if self.format == "openai-batch":
            return lines.blocks(lines.batch_lines(rows, self.dataset.name, self.options, tick))
        miner = None
        if self.collection is not None:
            miner = negatives.Miner(db, settings, self.collection, self.options.negatives)
        triplets = self.format == "triplets"
        return lines.blocks(negatives.lines(rows, miner, MINING_BATCH, triplets=triplets, tick=tick))

    def _copy_blocks(self, db: Session, tick: Progress) -> Iterator[bytes]:
        """openai-chat and jsonl: chat rows come as finished lines; the others as row JSON that Python turns into
        a line, with the same function the SQL lines are tested against. Gathered into blocks here, not by
        lines.blocks(): this loop runs once per example and is the export's hot path."""
        chat = self.format == "openai-chat"
        convert = lines.chat_line if chat else lines.record_line
        block: list[bytes | memoryview] = []
        size = 0
        for data in repository.copy(db, self.source, repository.CHAT_LINE if chat else repository.CHAT_RECORD):
            row: bytes | memoryview = data
            if data[0] == 3:
                row = convert(jsonb.loads(data[1:])).encode() + b"\n"  # as psycopg reads jsonb: app/db/jsonb.py
            block.append(row)
            size += len(row)
            if size >= CHUNK_BYTES:
                yield b"".join(block)
                tick(len(block))
                block, size = [], 0
        yield b"".join(block)
        tick(len(block))


def prepare(db: Session, dataset_name: str, options: Options, principal: Principal = OPEN) -> Export:
    """Check an export before a byte of it is written: 404 for an unknown dataset, snapshot or collection (or one
    PRINCIPAL is not granted: the same 404, at the same point), 422 naming the field for the rest (an example format
    the export cannot write among them)."""
    _check(options)
    dataset = datasets.get(db, dataset_name)
    snapshot_id = snapshots.get(db, dataset, options.snapshot).id if options.snapshot is not None else None
    collection = None
    if options.collection is not None:
        check_collection(principal, options.collection)
        collection = get_named(db, Collection, options.collection)
    source = Source(dataset.id, snapshot_id, options.split)
    export = Export(dataset, options, source, collection)
    rows = repository.format_counts(db, source)
    export.counts = {row.format: row.n for row in rows}
    accepted = CHAT_FORMATS if (export.format, options.kind) == ("openai-batch", "chat") else ACCEPTS[export.format]
    if accepted is not None and (others := [f for f in records.FORMATS if f in export.counts and f not in accepted]):
        found = ", ".join(f"{export.counts[f]} {f}" for f in others)
        raise InvalidInputError.for_field(
            "format", f"{export.format} takes {', '.join(accepted)} examples; this export has {found}"
        )
    if accepted == CHAT_FORMATS and (unanswered := sum(row.unanswered for row in rows)):
        export.skipped = unanswered
        export.source = Source(dataset.id, snapshot_id, options.split, answered_only=True)
        export.counts["qa"] -= unanswered
        if not export.counts["qa"]:
            del export.counts["qa"]
    if export.format == "parquet" and "custom" in export.counts:
        export.custom_keys = repository.custom_keys(db, export.source)
        if taken := [key for key in export.custom_keys if key in parquet.PARQUET_RESERVED]:
            raise InvalidInputError.for_field(
                "format", f"custom records have the field {', '.join(taken)}: parquet has its own column"
            )
    return export


def _check(options: Options) -> None:
    if options.format is None:
        raise InvalidInputError.for_field("format", f"is required: one of {', '.join(EXPORT_FORMATS)}")
    if options.format not in EXPORT_FORMATS:
        raise InvalidInputError.for_field(
            "format", f"unknown format {options.format!r}: expected one of {', '.join(EXPORT_FORMATS)}"
        )
    if options.split is not None and options.split not in SPLITS:
        raise InvalidInputError.for_field(
            "split", f"unknown split {options.split!r}: expected one of {', '.join(SPLITS)}"
        )
    if not 0 <= options.negatives <= negatives.MAX_NEGATIVES:
        raise InvalidInputError.for_field("negatives", f"must be between 0 and {negatives.MAX_NEGATIVES}")
    if options.negatives and options.format != "triplets":
        raise InvalidInputError.for_field("negatives", "mined negatives go into triplets: export format triplets")
    if options.negatives and options.collection is None:
        raise InvalidInputError.for_field("collection", "mining negatives needs the collection to search")
    if options.collection is not None and not options.negatives:
        raise InvalidInputError.for_field(
            "negatives", "give how many negatives to mine from the collection (1 or more)"
        )
    if options.format == "openai-batch":
        if options.kind not in BATCH_KINDS:
            raise InvalidInputError.for_field("kind", f"unknown kind {options.kind!r}: expected chat or embeddings")
        if not options.model:
            raise InvalidInputError.for_field("model", "the Batch API needs the model each request goes to")
