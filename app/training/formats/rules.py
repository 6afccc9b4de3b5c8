"""The rules of the formats other than chat: each takes a record, notes every problem, and returns the columns.

A rule appends (field, reason) to FOUND for each problem and returns the example's columns (input, output,
label, ...); the columns mean nothing when it found a problem. An optional field that is null counts as absent.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from app.limits import MAX_KEY_BYTES, MAX_LABELS

MAX_INT32 = 2**31 - 1
MIN_INT32 = -(2**31)
INT_ARRAYS = ("input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions")
# Top-level keys that every format takes; they go to their own columns, never into input.
EXTRA_KEYS = ("metadata", "source")

Found = list[tuple[str, str]]
Columns = dict[str, Any]

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


def type_name(value: Any) -> str:
    """The JSON name of VALUE's type: object, array, string, number, boolean or null."""
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def detect(keys: Mapping[str, Any]) -> str | None:
    """The format whose fields KEYS has (a record or a CSV row), or None."""
    if "messages" in keys:
        return "chat"
    if "prompt" in keys and "completion" in keys:
        return "completion"
    if "question" in keys and "context" in keys:
        return "qa"
    if "positive" in keys and "anchor" in keys and "negative" in keys:
        return "triplets"
    if "positive" in keys and ("query" in keys or "anchor" in keys):
        return "pairs"
    if "text" in keys and ("label" in keys or "labels" in keys):
        return "classification"
    if any(key in keys for key in INT_ARRAYS):
        return "custom"
    return None


def unknown_keys(record: Mapping[str, Any], allowed: Collection[str], format: str, found: Found) -> None:
    for key in record:
        if key not in allowed and key not in EXTRA_KEYS:
            found.append((key, f"is not a field of format {format} (put extra data in metadata)"))


def text_value(value: Any, path: str, found: Found) -> str | None:
    """VALUE if it is a string with something besides white space; else None, noting why."""
    if not isinstance(value, str):
        found.append((path, f"must be a string, got {type_name(value)}"))
        return None
    if not value.strip():
        found.append((path, "must not be empty"))
        return None
    return value


def required_text(record: Mapping[str, Any], key: str, format: str, found: Found, hint: str = "") -> str | None:
    if record.get(key) is None:
        found.append((key, f"is required for format {format}{hint}"))
        return None
    return text_value(record[key], key, found)


def completion(record: Mapping[str, Any], found: Found) -> Columns:
    unknown_keys(record, ("prompt", "completion"), "completion", found)
    prompt = required_text(record, "prompt", "completion", found)
    answer = required_text(record, "completion", "completion", found)
    return {"input": {"prompt": prompt}, "output": {"completion": answer}}


def _label(value: Any, path: str, found: Found) -> str | None:
    """A label: a string, or an integer or boolean stored as its JSON text (1 -> "1", true -> "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if len(value.encode(errors="replace")) > MAX_KEY_BYTES:
            found.append((path, f"is longer than {MAX_KEY_BYTES} bytes of UTF-8"))
            return None
        return text_value(value, path, found)
    found.append((path, f"must be a string, an integer or a boolean, got {type_name(value)}"))
    return None


def classification(record: Mapping[str, Any], found: Found) -> Columns:
    unknown_keys(record, ("text", "label", "labels"), "classification", found)
    columns: Columns = {"input": {"text": required_text(record, "text", "classification", found)}}
    label, labels = record.get("label"), record.get("labels")
    if label is not None and labels is not None:
        found.append(("labels", "give label or labels, not both"))
    elif label is not None:
        columns["label"] = _label(label, "label", found)
    elif labels is None:
        found.append(("label", "is required for format classification (or labels, an array)"))
    elif not isinstance(labels, list):
        found.append(("labels", f"must be an array of labels, got {type_name(labels)}"))
    elif not labels:
        found.append(("labels", "must not be empty"))
    elif len(labels) > MAX_LABELS:
        found.append(("labels", f"has {len(labels)} labels; at most {MAX_LABELS}"))
    else:
        seen: set[str] = set()
        for i, item in enumerate(labels):
            value = _label(item, f"labels[{i}]", found)
            if value in seen:
                found.append((f"labels[{i}]", f"repeats {value!r}"))
            elif value is not None:
                seen.add(value)
        columns["labels"] = [_label(item, "", []) for item in labels]
    return columns


def pairs(record: Mapping[str, Any], found: Found) -> Columns:
    unknown_keys(record, ("query", "anchor", "positive", "negative"), "pairs", found)
    first = "anchor" if record.get("anchor") is not None and record.get("query") is None else "query"
    if record.get("anchor") is not None and record.get("query") is not None:
        found.append(("anchor", "give query or anchor, not both"))
    text_input = {
        first: required_text(record, first, "pairs", found, " (or anchor)" if first == "query" else ""),
        "positive": required_text(record, "positive", "pairs", found),
    }
    negative = record.get("negative")
    if isinstance(negative, list):
        if not negative:
            found.append(("negative", "must not be empty"))
        for i, item in enumerate(negative):
            text_value(item, f"negative[{i}]", found)
    elif negative is not None:
        text_value(negative, "negative", found)
    if negative is not None:
        text_input["negative"] = negative
    return {"input": text_input}


def triplets(record: Mapping[str, Any], found: Found) -> Columns:
    unknown_keys(record, ("anchor", "positive", "negative"), "triplets", found)
    return {"input": {key: required_text(record, key, "triplets", found) for key in ("anchor", "positive", "negative")}}


def _answers(value: Any, found: Found) -> list[tuple[str, str, Any, Any]]:
    """(text path, start path, text, answer_start) of each answer, from SQuAD's list or Hugging Face's lists."""
    if isinstance(value, list):
        answers = []
        for i, answer in enumerate(value):
            if not isinstance(answer, dict):
                found.append(
                    (f"answers[{i}]", f"must be an object with text and answer_start, got {type_name(answer)}")
                )
                continue
            for key in answer:
                if key not in ("text", "answer_start"):
                    found.append((f"answers[{i}].{key}", "is not a field of an answer: expected text and answer_start"))
            answers.append(
                (f"answers[{i}].text", f"answers[{i}].answer_start", answer.get("text"), answer.get("answer_start"))
            )
        return answers
    if not isinstance(value, dict):
        found.append(("answers", f"must be an array of answers or an object of arrays, got {type_name(value)}"))
        return []
    for key in value:
        if key not in ("text", "answer_start"):
            found.append((f"answers.{key}", "is not a field of answers: expected text and answer_start"))
    texts, starts = value.get("text"), value.get("answer_start")
    for key, items in (("text", texts), ("answer_start", starts)):
        if not isinstance(items, list):
            found.append((f"answers.{key}", f"must be an array, got {type_name(items)}"))
    if not isinstance(texts, list) or not isinstance(starts, list):
        return []
    if len(texts) != len(starts):
        found.append(("answers.answer_start", f"has {len(starts)} items but answers.text has {len(texts)}"))
    return [
        (f"answers.text[{i}]", f"answers.answer_start[{i}]", text, start)
        for i, (text, start) in enumerate(zip(texts, starts, strict=False))
    ]


def qa(record: Mapping[str, Any], found: Found) -> Columns:
    unknown_keys(record, ("question", "context", "answers", "id", "title", "is_impossible"), "qa", found)
    question = required_text(record, "question", "qa", found)
    context = required_text(record, "context", "qa", found)
    qa_input: dict[str, Any] = {"question": question, "context": context}
    for key in ("id", "title"):
        value = record.get(key)
        if value is not None:
            if not isinstance(value, str) and (key == "title" or not isinstance(value, int) or isinstance(value, bool)):
                found.append((key, f"must be a string, got {type_name(value)}"))
            qa_input[key] = value
    impossible = record.get("is_impossible")
    if impossible is not None and not isinstance(impossible, bool):
        found.append(("is_impossible", f"must be true or false, got {type_name(impossible)}"))
    if record.get("answers") is None:
        found.append(("answers", "is required for format qa"))
        answers = []
    else:
        answers = _answers(record["answers"], found)
    for text_path, start_path, text, start in answers:
        text = text_value(text, text_path, found)
        if not isinstance(start, int) or isinstance(start, bool):
            found.append((start_path, f"must be an integer, got {type_name(start)}"))
        elif start < 0:
            found.append((start_path, f"must not be negative, got {start}"))
        elif context is not None and text is not None and context[start : start + len(text)] != text:
            there = context[start : start + len(text)]
            found.append((start_path, f"the context has {there!r} at {start}, not the answer {text!r}"))
    if not answers and impossible is not True and record.get("answers") is not None:
        found.append(("answers", "must not be empty unless is_impossible is true"))
    if answers and impossible is True:
        found.append(("answers", "must be empty when is_impossible is true"))
    output: dict[str, Any] = {"answers": {"text": [a[2] for a in answers], "answer_start": [a[3] for a in answers]}}
    if impossible is not None:
        output["is_impossible"] = impossible
    return {"input": qa_input, "output": output}


def _int_array(value: Any, path: str, found: Found) -> list[int] | None:
    if not isinstance(value, list):
        found.append((path, f"must be an array of integers, got {type_name(value)}"))
        return None
    if all(type(item) is int for item in value) and (not value or MIN_INT32 <= min(value) <= max(value) <= MAX_INT32):
        return list(value)
    for i, item in enumerate(value):
        if type(item) is not int:
            found.append((f"{path}[{i}]", f"must be an integer, got {type_name(item)}"))
        elif not MIN_INT32 <= item <= MAX_INT32:
            found.append((f"{path}[{i}]", f"{item} is outside the 32-bit integer range"))
    return None


def custom(record: Mapping[str, Any], found: Found) -> Columns:
    columns: Columns = {"input": {k: v for k, v in record.items() if k not in INT_ARRAYS and k not in EXTRA_KEYS}}
    for key in INT_ARRAYS:
        value = record.get(key)
        if type(value) is int and key.endswith("_positions"):
            value = [value]
        if value is not None:
            columns[key] = _int_array(value, key, found)
    ids = columns.get("input_ids")
    for key in ("attention_mask", "token_type_ids"):
        if ids is not None and columns.get(key) is not None and len(columns[key]) != len(ids):
            found.append((key, f"has {len(columns[key])} items but input_ids has {len(ids)}"))
    for i, bit in enumerate(columns.get("attention_mask") or ()):
        if bit not in (0, 1):
            found.append((f"attention_mask[{i}]", f"must be 0 or 1, got {bit}"))
    starts, ends = columns.get("start_positions"), columns.get("end_positions")
    for key, positions in (("start_positions", starts), ("end_positions", ends)):
        for i, position in enumerate(positions or ()):
            if position < 0:
                found.append((f"{key}[{i}]", f"must not be negative, got {position}"))
            elif ids is not None and position >= len(ids):
                found.append((f"{key}[{i}]", f"is past the end of input_ids ({len(ids)} tokens)"))
    if starts is not None and ends is not None:
        if len(starts) != len(ends):
            found.append(("end_positions", f"has {len(ends)} items but start_positions has {len(starts)}"))
        for i, (start, end) in enumerate(zip(starts, ends, strict=False)):
            if start > end:
                found.append((f"end_positions[{i}]", f"is {end}, before start_positions[{i}] ({start})"))
    return columns
