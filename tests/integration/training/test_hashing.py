"""app/training/formats/hashing.py against sql/idempotent/009-training.sql: the importer's hashes and a psql
INSERT's are the same bytes, so an example is the same example whichever way it came in."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.training.formats import hashing, records
from app.training.formats.records import ExampleRow
from app.training.imports.importer import Importer
from tests.factories import make_dataset
from tests.schema import sql

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {"type": "object", "properties": {"days": {"type": "integer", "minimum": 1e-07}}},
        },
    }
]

RECORDS: list[Any] = [
    {"messages": [{"role": "user", "content": "Plain"}, {"role": "assistant", "content": "Text."}]},
    {
        "messages": [
            {"role": "system", "content": "  Be TERSE.  "},
            {"role": "user", "content": '  Tabs\tand\nnewlines \r and "quotes" and back\\slash  '},
            {"role": "assistant", "content": "Ünïcödé ÉCOLE, ß, emoji 🙂, U+2028 \u2028 and \x01 control"},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}], "weight": 1},
        ],
        "tools": TOOLS,
        "parallel_tool_calls": False,
    },
    {"prompt": "2 + 2 =", "completion": " 4"},
    {"text": "WIN a prize", "label": "spam"},
    {"text": "multi", "labels": ['a "quoted" label', "back\\slash", "x"]},
    {"query": "q", "positive": "p", "negative": ["n1", "n2"]},
    {"anchor": "a", "positive": "p", "negative": "n"},
    {
        "question": "Where?",
        "context": "In Paris.",
        "answers": [{"text": "Paris", "answer_start": 3}],
        "id": "q1",
        "is_impossible": False,
    },
    {
        "input_ids": [101, 2054, 102],
        "attention_mask": [1, 1, 1],
        "start_positions": [1],
        "end_positions": [1],
        "score": 0.5,
        "tiny": 1e-07,
        "huge": 1.5e16,
        "negative_zero": -0.0,
        "hundred": 100.0,
        "big": 12345678901234567890,
        "nested": {"bb": [True, None, {"a": "x", "ccc": 2}], "a": "first", "é": "e-acute"},
    },
]


def parsed(record: Any) -> ExampleRow:
    row = records.parse_record(record, "custom" if "input_ids" in record else None)
    assert isinstance(row, ExampleRow), row
    return row


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: next(iter(r)))
def test_python_hashes_equal_sql_hashes(db: Session, record: Any) -> None:
    row = parsed(record)
    dataset = make_dataset(db)

    job = Importer(db, dataset, mode="strict")
    job.add([(1, "", record)])
    assert job.finish().stored == 1

    stored = db.execute(
        sql(
            "SELECT content_hash, text_hash, "
            "memora.example_hash(input, output, label, labels, input_ids, attention_mask, token_type_ids, "
            "start_positions, end_positions) AS sql_content, "
            "memora.text_hash(format, input, output, label, labels) AS sql_text "
            "FROM memora.example WHERE dataset_id = :d"
        ),
        {"d": dataset.id},
    ).one()
    assert stored.content_hash == hashing.content_hash(row) == stored.sql_content
    assert stored.text_hash == hashing.text_hash(row) == stored.sql_text


def test_case_and_spacing_twins_share_a_text_hash_but_not_a_content_hash() -> None:
    a = parsed({"text": "Hello   World", "label": "x"})
    b = parsed({"text": " hello world ", "label": "x"})

    assert hashing.text_hash(a) == hashing.text_hash(b)
    assert hashing.content_hash(a) != hashing.content_hash(b)


def test_jsonb_text_of_numbers_is_numeric_text() -> None:
    assert hashing.jsonb_text([1e-07, 1.5e16, -0.0, 100.0, 0.1, True, None]) == (
        "[0.0000001, 15000000000000000, 0.0, 100.0, 0.1, true, null]"
    )
