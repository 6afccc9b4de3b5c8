"""Helpers for the training format tests: the fixture files, and parse_record's two outcomes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.training.formats.records import ExampleRow, Problem, parse_record

FIXTURES = Path(__file__).parents[2] / "fixtures" / "training"


def jsonl(name: str) -> list[tuple[int, Any]]:
    """(line number, parsed JSON) of each line of a fixture file."""
    with (FIXTURES / name).open(encoding="utf-8") as f:
        return [(number, json.loads(line)) for number, line in enumerate(f, start=1)]


def parsed(name: str) -> dict[int, ExampleRow | list[Problem]]:
    return {number: parse_record(record, line=number) for number, record in jsonl(name)}


def row_of(record: Any, format: str | None = None, **kw: Any) -> ExampleRow:
    result = parse_record(record, format, **kw)
    assert isinstance(result, ExampleRow), result
    return result


def problems(record: Any, format: str | None = None, **kw: Any) -> list[tuple[str, str]]:
    """(field, reason) of each problem, failing the test if the record is valid."""
    result = parse_record(record, format, **kw)
    assert isinstance(result, list), result
    return [(p.field, p.reason) for p in result]
