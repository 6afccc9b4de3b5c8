"""Examples as records again (to_record), as conversations and as text, and records from CSV and SQuAD files."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any

import pytest

from app.training.formats.files import csv_records, squad_records
from app.training.formats.records import (
    FORMATS,
    ExampleRow,
    Problem,
    example_text,
    parse_record,
    to_record,
    training_messages,
)
from tests.unit.training.support import FIXTURES, jsonl, row_of

CONTEXT = "Paris is the capital of France."
USER = {"role": "user", "content": "Hi"}
ASSISTANT = {"role": "assistant", "content": "Hello"}


def csv_rows(text: str, format: str | None = None) -> list[dict[str, Any]]:
    return list(csv_records(csv.DictReader(io.StringIO(text)), format))


# Round trips: to_record is parse_record's inverse


def fixture_records() -> list[Any]:
    records = [record for name in ("chat.jsonl", "pairs.jsonl", "custom-tokenized.jsonl") for _, record in jsonl(name)]
    with (FIXTURES / "labels.csv").open(newline="") as f:
        records += list(csv_records(csv.DictReader(f), None))
    records += [record for _, record in squad_records(json.loads((FIXTURES / "squad-mini.json").read_text()))]
    return [
        *records,
        {"prompt": "2+2=", "completion": "4", "metadata": {"k": "v"}},
        {"text": "t", "labels": ["a", 1]},
        {"question": "What is Paris?", "context": CONTEXT, "answers": {"text": ["Paris"], "answer_start": [0]}},
    ]


def test_to_record_round_trips_every_good_fixture_record() -> None:
    rows = [r for r in (parse_record(record) for record in fixture_records()) if isinstance(r, ExampleRow)]
    assert {row.format for row in rows} == set(FORMATS)
    assert len(rows) == 18
    for row in rows:
        record = to_record(row)
        assert parse_record(record) == row
        assert parse_record(record, row.format) == row
        database_row = {k: v for k, v in asdict(row).items() if k not in ("source", "token_count")}
        assert to_record(database_row) == {k: v for k, v in record.items() if k != "source"}


def test_to_record_shapes() -> None:
    assert to_record(row_of({"text": "t", "label": 1})) == {"text": "t", "label": "1"}
    assert to_record(row_of({"input_ids": [1, 2], "start_positions": 0, "end_positions": 1, "x": "y"})) == {
        "x": "y",
        "input_ids": [1, 2],
        "start_positions": [0],
        "end_positions": [1],
    }
    qa = row_of(
        {"question": "q", "context": "c", "answers": [{"text": "c", "answer_start": 0}], "is_impossible": False}
    )
    assert to_record(qa) == {
        "question": "q",
        "context": "c",
        "answers": {"text": ["c"], "answer_start": [0]},
        "is_impossible": False,
    }


# The chat form and the text of an example


def test_training_messages() -> None:
    chat = row_of({"messages": [USER, ASSISTANT]})
    assert training_messages(chat) == [USER, ASSISTANT]
    assert training_messages(row_of({"prompt": "2+2=", "completion": "4"})) == [
        {"role": "user", "content": "2+2="},
        {"role": "assistant", "content": "4"},
    ]
    qa = row_of(
        {"question": "Capital?", "context": CONTEXT, "answers": {"text": ["Paris", "Pa"], "answer_start": [0, 0]}}
    )
    assert training_messages({"format": "qa", "input": qa.input, "output": qa.output}) == [
        {"role": "user", "content": f"Capital?\n\n{CONTEXT}"},
        {"role": "assistant", "content": "Paris"},
    ]
    assert training_messages(row_of({"text": "Win!", "label": "spam"}))[1] == {"role": "assistant", "content": "spam"}
    assert training_messages(row_of({"text": "t", "labels": ["a", "b"]}))[1] == {"role": "assistant", "content": "a, b"}


@pytest.mark.parametrize(
    "record",
    [
        {"query": "q", "positive": "p"},
        {"anchor": "a", "positive": "p", "negative": "n"},
        {"input_ids": [1]},
        {"question": "q", "context": "c", "answers": [], "is_impossible": True},
    ],
)
def test_training_messages_of_formats_without_a_chat_form(record: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"no chat form|without an answer"):
        training_messages(row_of(record))


def test_example_text_of_chat_skips_system_messages() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "content": "42"},
        {"role": "assistant", "content": "It is 42."},
    ]
    # As memora.example_text gives it: content parts print as jsonb, a message without content as an empty line.
    assert (
        example_text(ExampleRow("chat", {"messages": messages})) == '[{"text": "Hi", "type": "text"}]\n\n42\nIt is 42.'
    )


def test_example_text_follows_jsonb_key_order() -> None:
    row = row_of(
        {
            "id": "x1",
            "title": "T",
            "question": "Q?",
            "context": "ctx",
            "answers": {"text": ["ctx"], "answer_start": [0]},
        }
    )
    # Keys by length, then bytes: id, title, context, question; then the answers. Likewise negative < positive.
    assert example_text(row) == "x1\nT\nctx\nQ?\nctx"
    assert (
        example_text({"format": "pairs", "input": {"query": "q", "positive": "p", "negative": ["n1", "n2"]}})
        == "q\nn1\nn2\np"
    )
    assert example_text({"format": "completion", "input": {"prompt": "p"}, "output": {"completion": "c"}}) == "p\nc"
    # "é" is one character but two bytes, so it sorts after "aa".
    assert example_text({"format": "custom", "input": {"b": 1, "é": "2", "e": "1", "aa": [None, "3"]}}) == "1\n3\n2"
    assert example_text({"format": "custom", "input": {}}) == ""


# CSV


def test_csv_fixture() -> None:
    with (FIXTURES / "labels.csv").open(newline="") as f:
        records = list(csv_records(csv.DictReader(f), None))
    assert records == [
        {"metadata": {"annotator": "kim"}, "text": "Great product, works as described", "label": "positive"},
        {"text": "Arrived broken", "label": "negative"},
        {"text": "", "label": "neutral"},
        {"text": "Okay I guess", "label": ""},
        {"metadata": "not json", "text": "Would buy again", "label": "positive"},
    ]
    # The importer numbers a CSV row by its line, the header being line 1.
    results = [parse_record(record, line=n) for n, record in enumerate(records, start=2)]
    assert [r.label for r in results if isinstance(r, ExampleRow)] == ["positive", "negative"]
    assert [p for r in results if isinstance(r, list) for p in r] == [
        Problem(4, "text", "must not be empty"),
        Problem(5, "label", "must not be empty"),
        Problem(6, "metadata", "must be a JSON object, got string"),
    ]


QA_CSV = """question,context,answer_text,answer_start,id,is_impossible
q,c,c,0,q1,false
r,c,,,q2,TRUE
s,c,c,x,,maybe
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("text,labels\nt, a | b|c \n", [{"text": "t", "labels": ["a", "b", "c"]}]),
        ("text,label,labels\nt,,a|b\nu,x,\n", [{"text": "t", "labels": ["a", "b"]}, {"text": "u", "label": "x"}]),
        (
            "query,positive,negative\nq,p,\nq,p,n\n",
            [{"query": "q", "positive": "p"}, {"query": "q", "positive": "p", "negative": "n"}],
        ),
        ("anchor,positive,negative\na,p,n\n", [{"anchor": "a", "positive": "p", "negative": "n"}]),
        ("prompt,completion\np,\n", [{"prompt": "p", "completion": ""}]),
        (
            QA_CSV,
            [
                {"question": "q", "context": "c", "answers": [{"text": "c", "answer_start": 0}], "id": "q1"}
                | {"is_impossible": False},
                {"question": "r", "context": "c", "answers": [], "id": "q2", "is_impossible": True},
                {"question": "s", "context": "c", "answers": [{"text": "c", "answer_start": "x"}]}
                | {"is_impossible": "maybe"},
            ],
        ),
        (
            'input_ids,attention_mask,note\n"[1, 2]","[1, 1]",n\n',
            [{"input_ids": [1, 2], "attention_mask": [1, 1], "note": "n"}],
        ),
        # A short row lacks its last cells; cells past the header are not read.
        ("text,label\nshort\nt,l,extra\n", [{"text": "short", "label": ""}, {"text": "t", "label": "l"}]),
    ],
)
def test_csv_columns_make_records(text: str, expected: list[dict[str, Any]]) -> None:
    assert csv_rows(text) == expected


def test_csv_records_parse_to_their_formats() -> None:
    text = "question,context,answer_text,answer_start\nWhere?,In Paris.,Paris,3\n"
    assert row_of(csv_rows(text)[0]).output == {"answers": {"text": ["Paris"], "answer_start": [3]}}
    assert row_of(csv_rows("anchor,positive,negative\na,p,\n")[0]).format == "pairs"


def test_csv_custom_keeps_cells_as_text() -> None:
    text = "text,labels,answer_text,input_ids,metadata\nt,a|b,x,[7],{}\n"
    assert csv_rows(text, "custom") == [
        {"metadata": {}, "input_ids": [7], "text": "t", "labels": "a|b", "answer_text": "x"}
    ]
    assert row_of(csv_rows(text, "custom")[0], "custom").input == {"text": "t", "labels": "a|b", "answer_text": "x"}


# SQuAD


def test_squad_fixture() -> None:
    pairs = list(squad_records(json.loads((FIXTURES / "squad-mini.json").read_text(encoding="utf-8"))))
    assert [path for path, _ in pairs] == [
        "data[0].paragraphs[0].qas[0]",
        "data[0].paragraphs[0].qas[1]",
        "data[1].paragraphs[0].qas[0]",
        "data[1].paragraphs[0].qas[1]",
        "data[1].paragraphs[1].qas[0]",
    ]
    first = pairs[0][1]
    assert first == {
        "id": "p1",
        "question": "What is the capital of France?",
        "answers": [{"text": "Paris", "answer_start": 0}],
        "is_impossible": False,
        "context": "Paris is the capital and most populous city of France. It lies on the Seine.",
        "title": "Paris",
    }
    rows = [parse_record(record) for _, record in pairs]
    assert [r.input["id"] for r in rows if isinstance(r, ExampleRow)] == ["p1", "p2", "a1", "a2"]
    impossible = rows[3]
    assert isinstance(impossible, ExampleRow)
    assert impossible.output == {"answers": {"text": [], "answer_start": []}, "is_impossible": True}
    assert impossible.metadata == {"plausible_answers": [{"text": "The Amazon", "answer_start": 0}]}
    assert rows[4] == [
        Problem(
            None,
            "answers[0].answer_start",
            "the context has ' the Mediterranea' at 50, not the answer 'Mediterranean Sea'",
        )
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"version": "1.1"}, "data must be an array of objects"),
        ({"data": [{"title": "t", "paragraphs": {}}]}, r"data\[0\].paragraphs must be an array of objects"),
        ({"data": [{"paragraphs": [{"qas": ["q"]}]}]}, r"data\[0\].paragraphs\[0\].qas\[0\] must be an object"),
        ([1], "data must be an array of objects"),
    ],
)
def test_squad_that_is_not_squad(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        list(squad_records(document))


def test_squad_question_without_context_is_a_problem_of_the_record() -> None:
    [(path, record)] = squad_records({"data": [{"paragraphs": [{"qas": [{"question": "q", "answers": []}]}]}]})
    assert path == "data[0].paragraphs[0].qas[0]"
    assert ("context", "is required for format qa") in [(p.field, p.reason) for p in parse_record(record, "qa")]
