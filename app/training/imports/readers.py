"""Readers of the files an import takes: JSONL, CSV and JSON (a SQuAD file or an array of records), one record at
a time, as (line, field prefix, parsed record or the Problem of a line that could not be parsed)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, Literal

from app.errors import InvalidInputError, UnsupportedMediaTypeError
from app.training.formats.files import csv_records, squad_records
from app.training.formats.records import Problem

FileKind = Literal["jsonl", "csv", "json"]
Record = tuple[int | None, str, Any]

# What a file's name or content type says it is.
SUFFIXES: dict[str, FileKind] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".json": "json"}
MEDIA_TYPES: dict[str, FileKind] = {
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
    "text/csv": "csv",
    "application/json": "json",
}


TOO_DEEP = "is JSON nested too deeply to parse"
"""Python's parser gives up near a thousand levels, far past MEMORA_MAX_JSON_DEPTH: the line is refused."""


def file_kind(filename: str | None, media_type: str | None) -> FileKind:
    """JSONL, CSV or JSON (a SQuAD file, or an array of records), from the name or else the content type."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if media_type and media_type.lower() in MEDIA_TYPES:
        return MEDIA_TYPES[media_type.lower()]
    raise UnsupportedMediaTypeError(
        f"cannot import {filename or 'the body'} ({media_type or 'no content type'}): send JSONL (.jsonl, "
        "application/x-ndjson), CSV (.csv, text/csv) or a SQuAD JSON file (.json, application/json)"
    )


def read(
    stream: IO[bytes], kind: FileKind, format: str | None = None, rename: Mapping[str, str] | None = None
) -> Iterator[Record]:
    """The records of a file; RENAME ({column or key: field}) renames CSV columns and top-level JSON keys first."""
    if kind == "csv":
        return read_csv(stream, format, rename)
    records = read_jsonl(stream) if kind == "jsonl" else read_json(stream)
    return _renamed(records, rename) if rename else records


def parse_renames(pairs: Iterable[str]) -> dict[str, str]:
    """["text=sentence", "label=spam"] -> {"sentence": "text", "spam": "label"}: the field each column fills."""
    renames: dict[str, str] = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise InvalidInputError.for_field("rename", f"{pair!r} is not FIELD=COLUMN (e.g. label=spam)")
        renames[column.strip()] = field.strip()
    return renames


def _renamed(records: Iterator[Record], rename: Mapping[str, str]) -> Iterator[Record]:
    for line, prefix, record in records:
        if isinstance(record, dict):
            record = {rename.get(key, key): value for key, value in record.items()}
        yield line, prefix, record


def read_jsonl(stream: IO[bytes]) -> Iterator[Record]:
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            yield number, "", json.loads(raw)
        except UnicodeDecodeError:
            yield number, "", Problem(number, "", "is not UTF-8 text")
        except ValueError as exc:
            yield number, "", Problem(number, "", f"is not valid JSON ({exc})")
        except RecursionError:
            yield number, "", Problem(number, "", TOO_DEEP)


def read_csv(stream: IO[bytes], format: str | None, rename: Mapping[str, str] | None = None) -> Iterator[Record]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text)
    lines: list[int] = []

    def rows() -> Iterator[dict[str, str]]:
        for row in reader:
            lines.append(reader.line_num)
            yield {rename.get(k, k): v for k, v in row.items()} if rename else row

    try:
        for record in csv_records(rows(), format):
            yield lines[-1] if lines else None, "", record
    except UnicodeDecodeError:
        line = lines[-1] + 1 if lines else 1
        yield line, "", Problem(line, "", "is not UTF-8 text")
    except csv.Error as exc:
        yield reader.line_num, "", Problem(reader.line_num, "", f"is not valid CSV ({exc})")
    finally:
        text.detach()  # the caller owns the file


def read_json(stream: IO[bytes]) -> Iterator[Record]:
    """A SQuAD file ({"data": [...]}) gives its questions; a JSON array gives its items."""
    try:
        document = json.load(stream)
    except (ValueError, UnicodeDecodeError) as exc:
        yield None, "", Problem(None, "", f"is not valid JSON ({exc})")
        return
    except RecursionError:
        yield None, "", Problem(None, "", TOO_DEEP)
        return
    if isinstance(document, dict) and "data" in document:
        try:
            yield from ((None, path, record) for path, record in squad_records(document))
        except ValueError as exc:  # not SQuAD-shaped after all
            yield None, "", Problem(None, "", str(exc))
    elif isinstance(document, list):
        for i, record in enumerate(document):
            yield None, f"[{i}]", record
    else:
        yield None, "", Problem(None, "", 'must be a SQuAD file ({"data": [...]}) or an array of records')


def records_of(body: Any) -> Iterator[Record]:
    """The records of a JSON request body: one record, or an array of them (field paths examples[i])."""
    if isinstance(body, list):
        for i, record in enumerate(body):
            yield None, f"body[{i}]", record
    else:
        yield None, "body", body
