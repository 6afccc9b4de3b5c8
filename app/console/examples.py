"""Examples as a table row of the console shows them, and problems as its forms show them (by field)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.errors import Problem
from app.training.datasets.schemas import ExampleOut

# How much of an example's text a table shows; the whole example is at GET /v1/datasets/{name}/examples/{id}.
SUMMARY_CHARS = 200
_NOT_TEXT = {"label", "labels", "metadata", "source"}


@dataclass(frozen=True, slots=True)
class Shown:
    id: int
    seq: int
    split: str | None
    label: str
    text: str
    token_count: int | None


def shown(example: ExampleOut) -> Shown:
    record = example.record
    return Shown(example.id, example.seq, example.split, label_of(record), text_of(record), example.token_count)


def label_of(record: Mapping[str, Any]) -> str:
    """The record's label, or its labels joined by ", " (empty when it has neither)."""
    if isinstance(labels := record.get("labels"), list):
        return ", ".join(map(str, labels))
    label = record.get("label")
    return "" if label is None else str(label)


def text_of(record: Mapping[str, Any]) -> str:
    """The start of what the example says: a chat's turns ("user: ..."), else its text fields in order."""
    if isinstance(messages := record.get("messages"), list):
        parts = [f"{m.get('role')}: {m.get('content')}" for m in messages if isinstance(m, dict)]
    else:
        parts = [_flat(value) for key, value in record.items() if key not in _NOT_TEXT]
    text = " · ".join(p for p in parts if p)
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " · ".join(_flat(v) for v in value if not isinstance(v, int | float))
    if isinstance(value, dict):
        return " · ".join(_flat(v) for v in value.values())
    return ""


def by_field(problems: Iterable[Problem], rename: Mapping[str, str] | None = None) -> dict[str, str]:
    """PROBLEMS as {field: reason} (a field's reasons joined), the API's "body." prefix dropped and fields renamed to
    the form's own names by RENAME."""
    found: dict[str, str] = {}
    for problem in problems:
        field = str(problem.get("field", ""))
        field = field.removeprefix("body.")
        field = (rename or {}).get(field, field)
        reason = str(problem.get("reason", ""))
        found[field] = f"{found[field]}; {reason}" if field in found else reason
    return found
