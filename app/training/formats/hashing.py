"""An example's content_hash and text_hash computed in Python, byte for byte as memora.example_hash and
memora.text_hash (sql/idempotent/009-training.sql) compute them.

The importer hashes here, in the thread that parses, so PostgreSQL only stores rows: hashing in SQL cost the
server about 20 us of its ~60 us per imported example. A psql INSERT still gets its hashes from the trigger;
tests/integration/training/test_hashing.py holds the two equal on every kind of value (nested keys, numbers
written with exponents, escapes, Unicode, tool calls without content).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from app.training.formats.records import ExampleRow

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_string = json.JSONEncoder(ensure_ascii=False).encode  # escapes as PostgreSQL's escape_json does


def jsonb_text(value: Any) -> str:
    """VALUE as PostgreSQL prints a jsonb: object keys shorter first then by bytes, ", " and ": " between items,
    numbers as numeric prints them."""
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _numeric(value)
    if isinstance(value, dict):
        keys = sorted(value, key=lambda key: (len(key.encode()), key.encode()))
        return "{" + ", ".join(f"{_string(key)}: {jsonb_text(value[key])}" for key in keys) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(jsonb_text(item) for item in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _numeric(value: float) -> str:
    """A float as numeric_out prints the jsonb number json.dumps wrote for it (repr: 1e-07 is 0.0000001)."""
    if not math.isfinite(value):
        raise ValueError("NaN and Infinity are not JSON")
    if value == 0:
        return "0.0"  # numeric has no negative zero
    text = repr(value)
    return format(Decimal(text), "f") if "e" in text else text


def content_hash(row: ExampleRow) -> bytes:
    """memora.example_hash: SHA-256 of jsonb_build_array(input, output, label, labels, the integer arrays)."""
    content = [
        row.input,
        row.output,
        row.label,
        row.labels,
        row.input_ids,
        row.attention_mask,
        row.token_type_ids,
        row.start_positions,
        row.end_positions,
    ]
    return hashlib.sha256(jsonb_text(content).encode()).digest()


def text_hash(row: ExampleRow) -> bytes:
    """memora.text_hash: SHA-256 of the example's strings as a JSON array, ASCII lower-cased, white space collapsed
    and trimmed inside each string, then its label and labels."""
    text = jsonb_text(list(_text_values(row))).translate(_ASCII_LOWER)
    text = text.replace("\\n", " ").replace("\\t", " ").replace("\\r", " ")
    text = " ".join(part for part in text.split(" ") if part)
    text = text.replace('" ', '"').replace(' "', '"')
    labels = "\x1e".join(row.labels) if row.labels is not None else ""
    return hashlib.sha256(f"{text}\x1f{row.label or ''}\x1f{labels}".encode()).digest()


def _text_values(row: ExampleRow) -> Iterator[Any]:
    """What jsonb_path_query_array gives text_hash: the content of non-system messages (lax: a message without
    content gives nothing), or every string of input then output (strict $.**, depth first)."""
    if row.format == "chat":
        for message in row.input.get("messages") or ():
            if isinstance(message, dict) and "role" in message and message["role"] != "system" and "content" in message:
                yield message["content"]
        return
    yield from _strings([row.input, row.output])


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key in sorted(value, key=lambda key: (len(key.encode()), key.encode())):
            yield from _strings(value[key])
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
