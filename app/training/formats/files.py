"""Records from the files that are not JSONL: CSV rows and SQuAD documents. parse_record checks them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from app.training.formats.rules import INT_ARRAYS

# Columns kept even when their cell is empty, so that parse_record says "must not be empty" about them.
_TEXT_COLUMNS = frozenset(
    {"text", "label", "prompt", "completion", "query", "anchor", "positive", "question", "context"}
)
# Columns that are fields of some format; the others go to metadata (custom keeps every column as a field).
_FIELDS = _TEXT_COLUMNS | {"labels", "negative", "id", "title", "answers", "is_impossible", "source", "messages"}
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


def _json_cell(cell: str) -> Any:
    """The JSON in a cell, or the cell's text when it is not JSON (parse_record then names the field)."""
    try:
        return json.loads(cell)
    except (ValueError, RecursionError):  # RecursionError: nested past Python's parser, kept as text like the rest
        return cell


def _answers(cells: dict[str, str]) -> list[dict[str, Any]]:
    text, start = cells.pop("answer_text", ""), cells.pop("answer_start", "").strip()
    if not text and not start:
        return []
    digits = start.removeprefix("-")
    # ASCII digits only: str.isdigit() is true for '²' too, which int() refuses; the text goes on, and is named.
    return [{"text": text, "answer_start": int(start) if digits.isascii() and digits.isdigit() else start}]


def _record(row: Mapping[Any, str | None], format: str | None) -> dict[str, Any]:
    # DictReader puts the cells past the header under None, and gives None for the cells a short row lacks.
    cells = {key.strip(): value or "" for key, value in row.items() if key is not None}
    # A row with integer arrays is custom (every column a field) unless a format says otherwise.
    custom = format == "custom" or (format is None and any(key in cells for key in INT_ARRAYS))
    record: dict[str, Any] = {}
    if cells.get("metadata", "").strip():
        record["metadata"] = _json_cell(cells["metadata"])
    cells.pop("metadata", None)
    for key in INT_ARRAYS:
        if cells.get(key, "").strip():
            record[key] = _json_cell(cells.pop(key))
    if format != "custom":
        if "labels" in cells and cells["labels"].strip():
            record["labels"] = [label.strip() for label in cells.pop("labels").split("|")]
        if "answer_text" in cells or "answer_start" in cells:
            record["answers"] = _answers(cells)
        flag = cells.pop("is_impossible", "").strip().lower()
        if flag:
            record["is_impossible"] = flag in _TRUE if flag in _TRUE | _FALSE else flag
    extra: dict[str, str] = {}
    for key, value in cells.items():
        if not key:
            continue  # an unnamed column: a row index written by pandas
        if not custom and key not in _FIELDS:
            extra[key] = value
        elif value or (key in _TEXT_COLUMNS and format != "custom" and not (key == "label" and "labels" in record)):
            record[key] = value
    if extra:
        given = record.get("metadata")
        record["metadata"] = extra | given if isinstance(given, dict) else extra if given is None else given
    return record


def csv_records(rows: Iterable[dict[str, str]], format: str | None) -> Iterator[dict[str, Any]]:
    """CSV rows (csv.DictReader) as records; parse_record checks them.

    The columns name the fields: text,label (or labels, split on "|"); query,positive,negative;
    anchor,positive,negative; prompt,completion; question,context,answer_text,answer_start (plus id, title,
    is_impossible). A metadata column holds JSON, and so do integer-array columns (input_ids, ...). An empty cell
    is an absent field, except in a column a format requires (text, label, prompt, ...), which stays so that the
    problem names it. Other named columns go into metadata as text (an unnamed one, a pandas index, is dropped).
    Cells past the header are not read. FORMAT "custom" keeps the other cells as text fields.
    """
    for row in rows:
        yield _record(row, format)


def _items(value: Any, path: str, key: str) -> list[Any]:
    items = value.get(key) if isinstance(value, dict) else None
    if not isinstance(items, list):
        where = f"{path}.{key}" if path else key
        raise ValueError(f"{where} must be an array of objects: this is not a SQuAD file")
    return items


def squad_records(document: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """The questions of a SQuAD 1.1 or 2.0 file as ("data[i].paragraphs[j].qas[k]", qa record) pairs.

    A question's record has id, title, question, context, answers and is_impossible as the file has them; SQuAD
    2.0's plausible_answers go to metadata. Raises ValueError naming the place where the document stops being
    SQuAD-shaped (data, paragraphs or qas not arrays of objects); a record's own problems are parse_record's.
    """
    for i, article in enumerate(_items(document, "", "data")):
        title = article.get("title") if isinstance(article, dict) else None
        for j, paragraph in enumerate(_items(article, f"data[{i}]", "paragraphs")):
            where = f"data[{i}].paragraphs[{j}]"
            for k, qa in enumerate(_items(paragraph, where, "qas")):
                if not isinstance(qa, dict):
                    raise ValueError(f"{where}.qas[{k}] must be an object: this is not a SQuAD file")
                record = {key: qa[key] for key in ("id", "question", "answers", "is_impossible") if key in qa}
                record["context"] = paragraph.get("context")
                if title is not None:
                    record["title"] = title
                if qa.get("plausible_answers"):
                    record["metadata"] = {"plausible_answers": qa["plausible_answers"]}
                yield f"{where}.qas[{k}]", record
