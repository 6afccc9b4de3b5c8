"""Export a dataset or a snapshot as a training file, streamed in constant memory.

Formats: openai-chat (fine-tuning JSONL; also TRL's SFTTrainer), jsonl (the records as imported), parquet (for
Hugging Face datasets), csv (classification), pairs and triplets (sentence-transformers, with mined hard
negatives: app/training/negatives.py), openai-batch (Batch API requests). Rows are read in seq order from the live
dataset or from a snapshot (with its frozen split), never all at once: openai-chat and jsonl with one COPY in which
PostgreSQL writes the line of every chat example itself, the others through a server-side cursor.
docs/training-export.md describes the files.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg.rows import dict_row
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.engine import compose
from app.db.models import Collection, Dataset
from app.db.repository import get_named
from app.errors import InvalidInputError
from app.training import negatives
from app.training.datasets import service
from app.training.formats import records
from app.training.formats.rules import INT_ARRAYS
from app.training.snapshots import service as snapshots

EXPORT_FORMATS = ("openai-chat", "jsonl", "parquet", "csv", "pairs", "triplets", "openai-batch")
SPLITS = ("train", "validation", "test")
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
CHAT_KEYS = ("tools", "parallel_tool_calls", "functions")  # what a chat example carries besides its messages
CHUNK_BYTES = 256 * 1024
CURSOR_ROWS = 2_000
ROW_GROUP = 10_000
MINING_BATCH = 64

# Parquet: the record fields of each format as columns (strings as they are, anything else as JSON text), after
# example_id, split and format; then label, labels and the integer arrays typed; metadata as JSON text.
PARQUET_FIELDS = {
    "chat": ("messages", *CHAT_KEYS),
    "completion": ("prompt", "completion"),
    "classification": ("text",),
    "pairs": ("query", "anchor", "positive", "negative"),
    "triplets": ("anchor", "positive", "negative"),
    "qa": ("id", "title", "question", "context", "answers", "is_impossible"),
    "custom": (),  # the keys its records have
}
PARQUET_RESERVED = ("example_id", "split", "format", "label", "labels", "metadata", *INT_ARRAYS)

Progress = Callable[[int], None]

# What a row of the source gives the Python writers (and records.to_record / training_messages).
_COLUMNS = (
    "SELECT e.id, {split} AS split, e.format, e.input, e.output, e.label, e.labels, e.input_ids, e.attention_mask, "
    "e.token_type_ids, e.start_positions, e.end_positions, e.metadata"
)
# A qa question without an answer (SQuAD 2.0's is_impossible) has no assistant turn, so no chat form.
_UNANSWERED = "(e.format = 'qa' AND jsonb_array_length(e.output -> 'answers' -> 'text') = 0)"
# The same row as JSON text, for the rows of a COPY that Python writes (after a \x03 marker).
_ROW_JSON = (
    "E'\\x03' || json_build_object('id', e.id, 'split', {split}, 'format', e.format, 'input', e.input, "
    "'output', e.output, 'label', e.label, 'labels', e.labels, 'input_ids', e.input_ids, "
    "'attention_mask', e.attention_mask, 'token_type_ids', e.token_type_ids, "
    "'start_positions', e.start_positions, 'end_positions', e.end_positions, 'metadata', e.metadata)::text"
)
# The openai-chat line of a chat example, byte for byte what chat_line() prints: jsonb's text of a value uses
# json.dumps' separators, and Python reads an object's keys from jsonb in the order jsonb prints them.
_CHAT_LINE = (
    "'{{\"messages\": ' || (e.input -> 'messages')::text"
    + "".join(
        f" || CASE WHEN e.input -> '{key}' <> 'null' THEN ', \"{key}\": ' || (e.input -> '{key}')::text ELSE '' END"
        for key in CHAT_KEYS
    )
    + " || '}}'"
)
# The jsonl line of a chat example: records.to_record gives its input, with its metadata when it has any.
_CHAT_RECORD = (
    "CASE WHEN e.metadata = '{{}}' THEN e.input::text "
    "ELSE left(e.input::text, -1) || ', \"metadata\": ' || e.metadata::text || '}}' END"
)
# COPY's csv format quotes nothing in one column of JSON text: it has no control characters, so no \x01 or \x02.
_COPY = "COPY (SELECT CASE WHEN e.format = 'chat' THEN {line} ELSE {row} END"
_COPY_END = "ORDER BY {order}) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"


@dataclass(frozen=True, slots=True)
class Options:
    """What to export; prepare() checks it."""

    format: str | None
    split: str | None = None
    snapshot: str | None = None
    negatives: int = 0
    collection: str | None = None
    kind: str = "chat"
    model: str | None = None


@dataclass
class Export:
    """A checked export: what it reads, how many examples, the file it makes."""

    dataset: Dataset
    options: Options
    snapshot_id: int | None
    collection: Collection | None
    counts: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # qa examples without an answer, left out of chat exports
    custom_keys: list[str] = field(default_factory=list)
    fast: bool = True  # PostgreSQL writes the lines of chat examples (tests compare it with Python's lines)

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
        # An export may take long; and rows stream in the order of an index from the first one, rather than all
        # be sorted (spilling to disk on a large dataset) before the first byte.
        db.connection().exec_driver_sql("SET LOCAL statement_timeout = 0")
        db.connection().exec_driver_sql("SET LOCAL enable_sort = off")
        tick = progress or (lambda n: None)
        if self.format in ("openai-chat", "jsonl"):
            return self._copy_blocks(db, tick)
        if self.format == "parquet":
            return self._parquet(db, tick)
        if self.format == "csv":
            return _blocks(_csv_lines(self._rows(db), tick))
        if self.format == "openai-batch":
            return _blocks(_batch_lines(self._rows(db), self.dataset.name, self.options, tick))
        miner = None
        if self.collection is not None:
            miner = negatives.Miner(db, settings, self.collection, self.options.negatives)
        return _blocks(
            negatives.lines(self._rows(db), miner, MINING_BATCH, triplets=self.format == "triplets", tick=tick)
        )

    def statement(self, db: Session, head: str, tail: str = "ORDER BY {order}") -> tuple[str, dict[str, Any]]:
        """HEAD FROM the export's rows WHERE ... TAIL, schema-qualified; {split} and {order} are the split column
        and the seq order of the source (literal braces doubled)."""
        params: dict[str, Any] = {"dataset": self.dataset.id, "snapshot": self.snapshot_id, "split": self.options.split}
        if self.snapshot_id is None:
            names, split, order = ["example"], "e.split", "e.seq"
            where = "FROM {} e WHERE e.dataset_id = %(dataset)s AND e.deleted_at IS NULL"
        else:
            names, split, order = ["snapshot_example", "example"], "s.split", "s.seq"
            where = "FROM {} s JOIN {} e ON e.dataset_id = s.dataset_id AND e.id = s.example_id "
            where += "WHERE s.snapshot_id = %(snapshot)s"
        if self.options.split is not None:
            where += f" AND {split} = %(split)s"
        if self.skipped:
            where += f" AND NOT {_UNANSWERED}"
        text = f"{head} {where} {tail}".replace("{split}", split).replace("{order}", order)
        return compose(db.connection(), text, *names), params

    def _rows(self, db: Session) -> Iterator[dict[str, Any]]:
        """The rows through a server-side cursor, CURSOR_ROWS at a time."""
        sql, params = self.statement(db, _COLUMNS)
        driver = db.connection().connection.driver_connection
        with driver.cursor(name="memora_export", row_factory=dict_row) as cursor:  # type: ignore[union-attr]
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(CURSOR_ROWS):
                yield from rows

    def _copy_blocks(self, db: Session, tick: Progress) -> Iterator[bytes]:
        """openai-chat and jsonl: chat rows come as finished lines; the others as row JSON that Python turns into
        a line, with the same function the SQL lines are tested against. Gathered into blocks here, not by
        _blocks(): this loop runs once per example and is the export's hot path."""
        chat = self.format == "openai-chat"
        line = (_CHAT_LINE if chat else _CHAT_RECORD) if self.fast else _ROW_JSON
        convert = chat_line if chat else record_line
        # COPY takes no bind parameters: psycopg merges them into the statement, quoted, on the client.
        sql, params = self.statement(db, _COPY.format(line=line, row=_ROW_JSON), _COPY_END)
        driver = db.connection().connection.driver_connection
        block: list[Any] = []
        size = 0
        with driver.cursor() as cursor, cursor.copy(sql, params) as copy:  # type: ignore[union-attr]
            for data in copy:
                if data[0] == 3:
                    data = convert(json.loads(bytes(data[1:]))).encode() + b"\n"
                block.append(data)
                size += len(data)
                if size >= CHUNK_BYTES:
                    yield b"".join(block)
                    tick(len(block))
                    block, size = [], 0
        yield b"".join(block)
        tick(len(block))

    def _parquet(self, db: Session, tick: Progress) -> Iterator[bytes]:
        """Row groups of ROW_GROUP rows, each handed on as soon as ParquetWriter has written it."""
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        fields = [(name, pa.int64()) for name in ("example_id",)] + [(n, pa.string()) for n in ("split", "format")]
        record_fields: list[str] = []
        for fmt in records.FORMATS:
            if fmt in self.counts:
                extra = self.custom_keys if fmt == "custom" else PARQUET_FIELDS[fmt]
                record_fields += [name for name in extra if name not in record_fields]
        fields += [(name, pa.string()) for name in record_fields]
        if "classification" in self.counts:
            fields += [("label", pa.string()), ("labels", pa.list_(pa.string()))]
        if "custom" in self.counts:
            fields += [(name, pa.list_(pa.int32())) for name in INT_ARRAYS]
        fields.append(("metadata", pa.string()))
        schema = pa.schema(fields)
        sink = _Sink()
        with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
            for rows in _groups(self._rows(db), ROW_GROUP):
                columns: dict[str, list[Any]] = {name: [] for name, _ in fields}
                for row in rows:
                    _parquet_row(row, columns, record_fields)
                writer.write_table(pa.Table.from_pydict(columns, schema=schema), row_group_size=ROW_GROUP)
                tick(len(rows))
                yield sink.take()
        yield sink.take()


def _parquet_row(row: Mapping[str, Any], columns: dict[str, list[Any]], record_fields: list[str]) -> None:
    record = records.to_record(row)
    columns["example_id"].append(row["id"])
    columns["split"].append(row["split"])
    columns["format"].append(row["format"])
    for name in record_fields:
        value = record.get(name)
        columns[name].append(
            value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        )
    for name in ("label", "labels", *INT_ARRAYS):
        if name in columns:
            columns[name].append(row[name])
    columns["metadata"].append(json.dumps(row["metadata"], ensure_ascii=False))


class _Sink:
    """A write-only file for ParquetWriter; take() hands on what was written since the last call."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts = []
        return data


def _groups(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    group: list[dict[str, Any]] = []
    for row in rows:
        group.append(row)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _blocks(lines: Iterator[bytes]) -> Iterator[bytes]:
    """Lines gathered into blocks of about CHUNK_BYTES: fewer writes, fewer trips through the response."""
    block: list[bytes] = []
    size = 0
    for line in lines:
        block.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield b"".join(block)
            block, size = [], 0
    if block:
        yield b"".join(block)


def chat_object(row: Mapping[str, Any]) -> dict[str, Any]:
    """{"messages": records.training_messages(row)}, with a chat example's tools, parallel_tool_calls, functions."""
    line: dict[str, Any] = {"messages": records.training_messages(row)}
    if row["format"] == "chat":
        for key in CHAT_KEYS:
            if row["input"].get(key) is not None:
                line[key] = row["input"][key]
    return line


def chat_line(row: Mapping[str, Any]) -> str:
    """The openai-chat line of an example."""
    return json.dumps(chat_object(row), ensure_ascii=False)


def record_line(row: Mapping[str, Any]) -> str:
    """The jsonl line of an example: its record as records.to_record gives it, what the importer takes."""
    return json.dumps(records.to_record(row), ensure_ascii=False)


def _csv_lines(rows: Iterator[dict[str, Any]], tick: Progress) -> Iterator[bytes]:
    """text,label; a multi-label example's labels joined by "|"."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("text", "label"))
    done = 0
    for row in rows:
        labels = row["labels"]
        writer.writerow((row["input"]["text"], "|".join(labels) if labels is not None else row["label"]))
        done += 1
        if done == 1000:
            tick(done)
            done = 0
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    tick(done)
    yield buffer.getvalue().encode()


def _batch_lines(rows: Iterator[dict[str, Any]], dataset: str, options: Options, tick: Progress) -> Iterator[bytes]:
    """Batch API requests: chat completions of each conversation without its final (assistant) turn, or the
    embedding of each example's text."""
    done = 0
    for row in rows:
        if options.kind == "chat":
            chat = chat_object(row)
            messages = chat.pop("messages")
            if messages and messages[-1].get("role") == "assistant":
                messages = messages[:-1]
            # weight is a fine-tuning key; Chat Completions does not take it.
            body = {"model": options.model, "messages": [_without_weight(m) for m in messages], **chat}
            url = "/v1/chat/completions"
        else:
            body = {"model": options.model, "input": records.example_text(row)}
            url = "/v1/embeddings"
        request = {"custom_id": f"{dataset}-{row['id']}", "method": "POST", "url": url, "body": body}
        yield json.dumps(request, ensure_ascii=False).encode() + b"\n"
        done += 1
        if done == 1000:
            tick(done)
            done = 0
    tick(done)


def _without_weight(message: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if key != "weight"}


def prepare(db: Session, dataset_name: str, options: Options) -> Export:
    """Check an export before a byte of it is written: 404 for an unknown dataset, snapshot or collection, 422
    naming the field for the rest (an example format the export cannot write among them)."""
    _check(options)
    dataset = service.get(db, dataset_name)
    snapshot_id = snapshots.get(db, dataset, options.snapshot).id if options.snapshot is not None else None
    collection = None
    if options.collection is not None:
        collection = get_named(db, Collection, options.collection)
    export = Export(dataset, options, snapshot_id, collection)
    sql, params = export.statement(
        db, f"SELECT e.format, count(*) AS n, count(*) FILTER (WHERE {_UNANSWERED}) AS unanswered", "GROUP BY e.format"
    )
    rows = db.connection().exec_driver_sql(sql, params).all()
    export.counts = {row.format: row.n for row in rows}
    accepted = CHAT_FORMATS if (export.format, options.kind) == ("openai-batch", "chat") else ACCEPTS[export.format]
    if accepted is not None and (others := [f for f in records.FORMATS if f in export.counts and f not in accepted]):
        found = ", ".join(f"{export.counts[f]} {f}" for f in others)
        raise InvalidInputError.for_field(
            "format", f"{export.format} takes {', '.join(accepted)} examples; this export has {found}"
        )
    if accepted == CHAT_FORMATS and (unanswered := sum(row.unanswered for row in rows)):
        export.skipped = unanswered
        export.counts["qa"] -= unanswered
        if not export.counts["qa"]:
            del export.counts["qa"]
    if export.format == "parquet" and "custom" in export.counts:
        sql, params = export.statement(
            db,
            "SELECT DISTINCT k.key FROM (SELECT e.input",
            "AND e.format = 'custom') e, jsonb_object_keys(e.input) k(key)",
        )
        export.custom_keys = sorted(row.key for row in db.connection().exec_driver_sql(sql, params))
        if taken := [key for key in export.custom_keys if key in PARQUET_RESERVED]:
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
