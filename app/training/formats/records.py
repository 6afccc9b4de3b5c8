"""The shapes a labeled example can have: recognise a record's format, check it, and store it as a row.

A record is one parsed JSON object (a JSONL line, a CSV row through csv_records, a SQuAD question through
squad_records). parse_record turns it into an ExampleRow, the columns of memora.example, or into every problem
it has; to_record turns a row back into the record. The rules of each format live in rules.py and
chat.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.training.formats import chat, rules, tokens
from app.training.formats.rules import INT_ARRAYS, Columns, Found, type_name

# The columns of memora.example that hold an example's content, which to_record reads (with metadata).
COLUMNS = ("format", "input", "output", "label", "labels", *INT_ARRAYS)

# The same as app.db.models.EXAMPLE_FORMATS (a test holds them equal); no database import here.
FORMATS = ("chat", "completion", "classification", "pairs", "triplets", "qa", "custom")

_RULES: dict[str, Callable[[Mapping[str, Any], Found], Columns]] = {
    "chat": chat.chat,
    "completion": rules.completion,
    "classification": rules.classification,
    "pairs": rules.pairs,
    "triplets": rules.triplets,
    "qa": rules.qa,
    "custom": rules.custom,
}
_UNDETECTED = (
    "matches no format: expected messages (chat), prompt and completion, question and context (qa), anchor, "
    "positive and negative (triplets), query and positive (pairs), text and label or labels (classification), or "
    "input_ids (custom); give the format to import anything else as custom"
)


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with a record, and where: LINE of the file (None for a JSON body), FIELD inside it."""

    line: int | None
    field: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


@dataclass(slots=True)
class ExampleRow:
    """One example as the columns of memora.example; source is the record's, for the importer to resolve."""

    format: str
    input: dict[str, Any]
    output: Any | None = None
    label: str | None = None
    labels: list[str] | None = None
    input_ids: list[int] | None = None
    attention_mask: list[int] | None = None
    token_type_ids: list[int] | None = None
    start_positions: list[int] | None = None
    end_positions: list[int] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    token_count: int | None = None


def detect_format(record: Any) -> str | None:
    """The format a parsed JSON record has the fields of, or None (also for anything but an object)."""
    return rules.detect(record) if isinstance(record, dict) else None


def parse_record(
    record: Any, format: str | None = None, *, line: int | None = None, model: str | None = None
) -> ExampleRow | list[Problem]:
    """RECORD as a row of FORMAT (None: the format it looks like), or every problem it has.

    The row's token_count is counted for MODEL (None: tokens.DEFAULT_MODEL); a chat example over MODEL's
    fine-tuning limit is a problem. Raises ValueError for a FORMAT that does not exist.
    """
    if format is not None and format not in _RULES:
        raise ValueError(f"unknown format {format!r}: expected one of {', '.join(FORMATS)}")
    if not isinstance(record, dict):
        return [Problem(line, "", f"must be a JSON object, got {type_name(record)}")]
    format = format or rules.detect(record)
    if format is None:
        return [Problem(line, "", _UNDETECTED)]
    found: Found = []
    extras = {}
    for key in rules.EXTRA_KEYS:
        value = record.get(key)
        if value is not None and not isinstance(value, dict):
            found.append((key, f"must be a JSON object, got {type_name(value)}"))
        extras[key] = value
    columns = _RULES[format](record, found)
    if found:
        return [Problem(line, path, reason) for path, reason in found]
    row = ExampleRow(format, metadata=extras["metadata"] or {}, source=extras["source"], **columns)
    model = model or tokens.DEFAULT_MODEL
    row.token_count = _token_count(row, model)
    if format == "chat" and row.token_count > (limit := tokens.token_limit(model)):
        about = "" if tokens.EXACT else "about "
        return [
            Problem(line, "", f"has {about}{row.token_count:,} tokens, more than the {limit:,} of {model} fine-tuning")
        ]
    return row


def _token_count(row: ExampleRow, model: str) -> int:
    """Tokens as the example trains: as a conversation for the formats that train as one, else its strings
    (pairs, triplets, custom without input_ids, a qa question with no answer) or its input_ids."""
    if row.format == "chat":
        return tokens.count_chat_tokens(
            row.input["messages"], row.input.get("tools") or row.input.get("functions"), model
        )
    if row.input_ids is not None:
        return len(row.input_ids)
    answered = row.format == "qa" and row.output is not None and bool(row.output["answers"]["text"])
    if row.format in ("completion", "classification") or answered:
        return tokens.count_chat_tokens(training_messages(row), model=model)
    return sum(tokens.count_text_tokens(text, model) for text in _strings([row.input, row.output]))


def _get(row: ExampleRow | Mapping[str, Any], key: str) -> Any:
    return getattr(row, key) if isinstance(row, ExampleRow) else row.get(key)


def to_record(row: ExampleRow | Mapping[str, Any]) -> dict[str, Any]:
    """The record of an example in its format's JSON shape: parse_record gives back an equal row.

    ROW is an ExampleRow or a mapping with its keys (a database row); metadata and source are left out when
    the row has none.
    """
    format, input, output = _get(row, "format"), _get(row, "input") or {}, _get(row, "output")
    if format == "completion":
        record = {"prompt": input["prompt"], "completion": output["completion"]}
    elif format == "classification":
        labels = _get(row, "labels")
        record = {
            "text": input["text"],
            **({"labels": list(labels)} if labels is not None else {"label": _get(row, "label")}),
        }
    elif format == "qa":
        record = {**input, **output}
    else:
        record = dict(input)
    if format == "custom":
        record |= {key: list(value) for key in INT_ARRAYS if (value := _get(row, key)) is not None}
    if metadata := _get(row, "metadata"):
        record["metadata"] = metadata
    if (source := _get(row, "source")) is not None:
        record["source"] = source
    return record


def _message(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "content": content}


def training_messages(row: ExampleRow | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The example as a conversation for chat fine-tuning.

    chat: its messages; completion: the prompt from the user, the completion from the assistant; qa: the
    question and the context (after a blank line) from the user, the first answer from the assistant;
    classification: the text from the user, the label (labels joined by ", ") from the assistant. Raises
    ValueError for the other formats, and for a qa question without an answer.
    """
    format, input, output = _get(row, "format"), _get(row, "input"), _get(row, "output")
    if format == "chat":
        return list(input["messages"])
    if format == "completion":
        return [_message("user", input["prompt"]), _message("assistant", output["completion"])]
    if format == "qa":
        answers = output["answers"]["text"]
        if not answers:
            raise ValueError("a qa example without an answer (is_impossible) has no assistant message")
        return [_message("user", f"{input['question']}\n\n{input['context']}"), _message("assistant", answers[0])]
    if format == "classification":
        labels = _get(row, "labels")
        label = ", ".join(labels) if labels is not None else _get(row, "label")
        return [_message("user", input["text"]), _message("assistant", label)]
    raise ValueError(f"format {format} has no chat form: only chat, completion, qa and classification do")


def _jsonb_order(keys: Iterable[str]) -> list[str]:
    """Keys in jsonb's order: shorter first, then by bytes."""
    return sorted(keys, key=lambda key: (len(key.encode()), key.encode()))


def _strings(value: Any) -> Iterator[str]:
    """Every string in VALUE, depth first, objects in jsonb key order (jsonb_path_query's strict $.**)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key in _jsonb_order(value):
            yield from _strings(value[key])
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _jsonb_text(value: Any) -> str:
    """VALUE as jsonb prints it: keys in jsonb order, ", " and ": " between items."""
    if isinstance(value, dict):
        items = (f"{json.dumps(key, ensure_ascii=False)}: {_jsonb_text(value[key])}" for key in _jsonb_order(value))
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_jsonb_text(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def example_text(row: ExampleRow | Mapping[str, Any]) -> str:
    """The text of an example, as memora.example_text (sql/idempotent/009-training.sql) gives it: for chat, the
    content of every message but the system ones, joined by newlines (no content: an empty line; content parts:
    their JSON, as SQL's ->> prints them); else every string in input and then output, one per line."""
    input, output = _get(row, "input"), _get(row, "output")
    if _get(row, "format") == "chat":
        lines = []
        for message in (input or {}).get("messages") or ():
            if not isinstance(message, dict) or message.get("role") != "system":
                content = message.get("content") if isinstance(message, dict) else None
                lines.append(content if isinstance(content, str) else "" if content is None else _jsonb_text(content))
        return "\n".join(lines)
    return "\n".join(_strings([input, output]))
