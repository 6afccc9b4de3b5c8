"""Example formats other than chat: detection, each format's rules with exact field paths, the columns a record
becomes (test_training_chat.py has chat; test_training_records.py the way back, CSV and SQuAD)."""

from __future__ import annotations

from typing import Any

import pytest

from app.db.models import EXAMPLE_FORMATS
from app.training.formats.records import FORMATS, ExampleRow, Problem, detect_format, parse_record, training_messages
from app.training.formats.tokens import count_chat_tokens
from tests.unit.training.support import parsed, problems, row_of

NO_FORMAT = (
    "matches no format: expected messages (chat), prompt and completion, question and context (qa), anchor, "
    "positive and negative (triplets), query and positive (pairs), text and label or labels (classification), or "
    "input_ids (custom); give the format to import anything else as custom"
)
CONTEXT = "Paris is the capital of France."
NOT_EMPTY_UNLESS = ("answers", "must not be empty unless is_impossible is true")


def test_formats_are_the_tables() -> None:
    assert FORMATS == EXAMPLE_FORMATS


def test_problem_to_dict() -> None:
    assert Problem(3, "messages[0].role", "is required").to_dict() == {
        "line": 3,
        "field": "messages[0].role",
        "reason": "is required",
    }


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"messages": []}, "chat"),
        ({"prompt": "p", "completion": "c"}, "completion"),
        ({"question": "q", "context": "c", "answers": []}, "qa"),
        ({"anchor": "a", "positive": "p", "negative": "n"}, "triplets"),
        ({"anchor": "a", "positive": "p"}, "pairs"),
        ({"query": "q", "positive": "p", "negative": ["n"]}, "pairs"),
        ({"text": "t", "label": "l"}, "classification"),
        ({"text": "t", "labels": ["l"]}, "classification"),
        ({"attention_mask": [1]}, "custom"),
        ({"input_ids": [1], "text": "t"}, "custom"),
        ({"text": "t"}, None),
        ({"prompt": "p"}, None),
        ({}, None),
        ([{"messages": []}], None),
        ("messages", None),
        (None, None),
    ],
)
def test_detect_format(record: Any, expected: str | None) -> None:
    assert detect_format(record) == expected


def test_a_record_of_no_format_or_not_an_object() -> None:
    assert problems({"text": "t"}) == [("", NO_FORMAT)]
    assert parse_record([1, 2], line=9) == [Problem(9, "", "must be a JSON object, got array")]
    assert problems("text") == [("", "must be a JSON object, got string")]
    with pytest.raises(ValueError, match="unknown format 'ner'"):
        parse_record({"text": "t"}, "ner")


def test_a_given_format_says_what_is_missing() -> None:
    assert problems({"prompt": "p", "completion": "c"}, "chat") == [
        ("prompt", "is not a field of format chat (put extra data in metadata)"),
        ("completion", "is not a field of format chat (put extra data in metadata)"),
        ("messages", "is required for format chat"),
    ]
    assert problems({"anchor": "a", "positive": "p"}, "triplets") == [("negative", "is required for format triplets")]
    assert problems({"text": "t"}, "classification") == [
        ("label", "is required for format classification (or labels, an array)")
    ]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"metadata": ["a"]}, [("metadata", "must be a JSON object, got array")]),
        ({"source": "doc-1"}, [("source", "must be a JSON object, got string")]),
    ],
)
def test_metadata_and_source_must_be_objects(record: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems({"text": "t", "label": "l", **record}) == expected


def test_metadata_and_source_are_columns_not_input() -> None:
    row = row_of({"text": "t", "label": "l", "metadata": {"k": 1}, "source": {"collection": "c"}})
    assert (row.input, row.metadata, row.source) == ({"text": "t"}, {"k": 1}, {"collection": "c"})
    row = row_of({"text": "t", "label": "l", "metadata": None, "source": None})
    assert (row.metadata, row.source) == ({}, None)


# Completion, classification, pairs, triplets


def test_completion() -> None:
    row = row_of({"prompt": "2+2=", "completion": "4"})
    assert (row.input, row.output, row.token_count) == ({"prompt": "2+2="}, {"completion": "4"}, row.token_count)
    assert row.token_count == count_chat_tokens(training_messages(row))
    assert problems({"prompt": "", "completion": 4, "extra": 1}) == [
        ("extra", "is not a field of format completion (put extra data in metadata)"),
        ("prompt", "must not be empty"),
        ("completion", "must be a string, got number"),
    ]


@pytest.mark.parametrize(
    ("label", "stored"), [("spam", "spam"), (1, "1"), (0, "0"), (-3, "-3"), (True, "true"), (False, "false")]
)
def test_classification_label_is_stored_as_text(label: Any, stored: str) -> None:
    row = row_of({"text": "Win a prize", "label": label})
    assert (row.input, row.label, row.labels) == ({"text": "Win a prize"}, stored, None)


def test_classification_labels() -> None:
    row = row_of({"text": "t", "labels": ["a", 2, True]})
    assert (row.label, row.labels) == (None, ["a", "2", "true"])


LABEL_TYPE = "must be a string, an integer or a boolean, got"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"text": "t", "label": 1.5}, [("label", f"{LABEL_TYPE} number")]),
        ({"text": "t", "label": {"name": "a"}}, [("label", f"{LABEL_TYPE} object")]),
        ({"text": "t", "label": " "}, [("label", "must not be empty")]),
        ({"text": "t", "label": "a", "labels": ["a"]}, [("labels", "give label or labels, not both")]),
        ({"text": "t", "labels": []}, [("labels", "must not be empty")]),
        ({"text": "t", "labels": "a|b"}, [("labels", "must be an array of labels, got string")]),
        (
            {"text": "t", "labels": ["a", "", "b", "a", 1, "1"]},
            [("labels[1]", "must not be empty"), ("labels[3]", "repeats 'a'"), ("labels[5]", "repeats '1'")],
        ),
        ({"text": 3, "label": "a"}, [("text", "must be a string, got number")]),
    ],
)
def test_classification_problems(record: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems(record) == expected


def test_pairs_and_triplets_fixture() -> None:
    rows = parsed("pairs.jsonl")
    first, second, third = rows[1], rows[2], rows[3]
    assert isinstance(first, ExampleRow)
    assert isinstance(second, ExampleRow)
    assert isinstance(third, ExampleRow)
    assert (first.format, first.input["negative"]) == ("pairs", ["Plants need water.", "Leaves fall in autumn."])
    assert (second.format, set(second.input)) == ("triplets", {"anchor", "positive", "negative"})
    assert (third.format, third.input) == ("pairs", {"anchor": "The cat sleeps.", "positive": "A cat is asleep."})
    assert third.metadata == {"origin": "sts"}
    assert rows[4] == [Problem(4, "positive", "must not be empty")]
    assert rows[5] == [Problem(5, "negative[1]", "must be a string, got number")]


@pytest.mark.parametrize(
    ("record", "format", "expected"),
    [
        ({"query": "q", "anchor": "a", "positive": "p"}, None, [("anchor", "give query or anchor, not both")]),
        ({"positive": "p"}, "pairs", [("query", "is required for format pairs (or anchor)")]),
        ({"query": "q", "positive": "p", "negative": []}, None, [("negative", "must not be empty")]),
        ({"query": "q", "positive": ["p"]}, None, [("positive", "must be a string, got array")]),
        ({"anchor": "a", "positive": "p", "negative": ["n"]}, None, [("negative", "must be a string, got array")]),
        (
            {"anchor": "a", "positive": "p", "negative": "n", "score": 1},
            None,
            [("score", "is not a field of format triplets (put extra data in metadata)")],
        ),
    ],
)
def test_pairs_and_triplets_problems(record: dict[str, Any], format: str | None, expected: list[Any]) -> None:
    assert problems(record, format) == expected


def test_triplets_given_as_pairs() -> None:
    row = row_of({"anchor": "a", "positive": "p", "negative": "n"}, "pairs")
    assert (row.format, row.input) == ("pairs", {"anchor": "a", "positive": "p", "negative": "n"})


# QA


@pytest.mark.parametrize(
    "answers",
    [
        [{"text": "Paris", "answer_start": 0}, {"text": "capital of France", "answer_start": 13}],
        {"text": ["Paris", "capital of France"], "answer_start": [0, 13]},
    ],
)
def test_qa_answers_in_either_shape_are_stored_as_lists(answers: Any) -> None:
    row = row_of({"id": "q1", "title": "Paris", "question": "What is Paris?", "context": CONTEXT, "answers": answers})
    assert row.input == {"question": "What is Paris?", "context": CONTEXT, "id": "q1", "title": "Paris"}
    assert row.output == {"answers": {"text": ["Paris", "capital of France"], "answer_start": [0, 13]}}


def test_qa_unanswerable() -> None:
    row = row_of({"question": "Where is Rome?", "context": CONTEXT, "answers": [], "is_impossible": True})
    assert row.output == {"answers": {"text": [], "answer_start": []}, "is_impossible": True}


PARIS = {"text": "Paris", "answer_start": 0}


@pytest.mark.parametrize(
    ("answers", "extra", "expected"),
    [
        (
            [PARIS, {"text": "France", "answer_start": 20}],
            {},
            [("answers[1].answer_start", "the context has ' of Fr' at 20, not the answer 'France'")],
        ),
        (
            {"text": ["Paris", "France"], "answer_start": [1, 99]},
            {},
            [
                ("answers.answer_start[0]", "the context has 'aris ' at 1, not the answer 'Paris'"),
                ("answers.answer_start[1]", "the context has '' at 99, not the answer 'France'"),
            ],
        ),
        (
            {"text": ["Paris"], "answer_start": [0, 5]},
            {},
            [("answers.answer_start", "has 2 items but answers.text has 1")],
        ),
        (
            {"text": "Paris", "answer_start": 0},
            {},
            [
                ("answers.text", "must be an array, got string"),
                ("answers.answer_start", "must be an array, got number"),
                NOT_EMPTY_UNLESS,
            ],
        ),
        (
            [{"text": "", "answer_start": -1, "end": 3}],
            {},
            [
                ("answers[0].end", "is not a field of an answer: expected text and answer_start"),
                ("answers[0].text", "must not be empty"),
                ("answers[0].answer_start", "must not be negative, got -1"),
            ],
        ),
        (
            [{"text": "Paris", "answer_start": "0"}, "Paris"],
            {},
            [
                ("answers[1]", "must be an object with text and answer_start, got string"),
                ("answers[0].answer_start", "must be an integer, got string"),
            ],
        ),
        (
            "Paris",
            {},
            [("answers", "must be an array of answers or an object of arrays, got string"), NOT_EMPTY_UNLESS],
        ),
        ([], {}, [NOT_EMPTY_UNLESS]),
        ([], {"is_impossible": False}, [NOT_EMPTY_UNLESS]),
        ([PARIS], {"is_impossible": True}, [("answers", "must be empty when is_impossible is true")]),
        (
            [],
            {"is_impossible": "yes", "id": 1.5, "title": 3},
            [
                ("id", "must be a string, got number"),
                ("title", "must be a string, got number"),
                ("is_impossible", "must be true or false, got string"),
                NOT_EMPTY_UNLESS,
            ],
        ),
    ],
)
def test_qa_problems(answers: Any, extra: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems({"question": "What is Paris?", "context": CONTEXT, "answers": answers, **extra}) == expected


def test_qa_requires_question_context_and_answers() -> None:
    assert problems({"question": "q", "context": ""}, "qa") == [
        ("context", "must not be empty"),
        ("answers", "is required for format qa"),
    ]
    assert row_of({"question": "q", "context": "c", "answers": [], "is_impossible": True, "id": 7}).input["id"] == 7


# Custom


def test_custom_fixture() -> None:
    rows = parsed("custom-tokenized.jsonl")
    first, second = rows[1], rows[2]
    assert isinstance(first, ExampleRow)
    assert isinstance(second, ExampleRow)
    assert first.input == {"text": "hello world"}
    assert (first.input_ids, first.attention_mask, first.token_type_ids) == ([101, 7592, 2088, 102], [1] * 4, [0] * 4)
    assert (first.start_positions, first.end_positions, first.token_count) == ([1], [2], 4)
    assert second.input == {"task": "span", "tags": ["a", "b"]}
    assert (second.start_positions, second.end_positions, second.attention_mask) == ([0], [2], None)
    assert [[p.to_dict() for p in r] for r in rows.values() if isinstance(r, list)] == [
        [
            {"line": 3, "field": "attention_mask", "reason": "has 2 items but input_ids has 3"},
            {"line": 3, "field": "token_type_ids", "reason": "has 4 items but input_ids has 3"},
        ],
        [
            {"line": 4, "field": "input_ids[1]", "reason": "2147483648 is outside the 32-bit integer range"},
            {"line": 4, "field": "input_ids[2]", "reason": "must be an integer, got boolean"},
            {"line": 4, "field": "input_ids[3]", "reason": "must be an integer, got string"},
        ],
        [{"line": 5, "field": "end_positions[0]", "reason": "is 1, before start_positions[0] (3)"}],
    ]


def test_custom_takes_any_object() -> None:
    row = row_of({"prompt": "p", "anything": {"nested": [1, None]}, "metadata": {"m": 1}}, "custom")
    assert (row.input, row.metadata, row.input_ids) == (
        {"prompt": "p", "anything": {"nested": [1, None]}},
        {"m": 1},
        None,
    )
    assert row_of({"input_ids": [-(2**31), 2**31 - 1]}).input_ids == [-(2**31), 2**31 - 1]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"input_ids": "1 2 3"}, [("input_ids", "must be an array of integers, got string")]),
        ({"input_ids": [1, 2], "attention_mask": [1, 2]}, [("attention_mask[1]", "must be 0 or 1, got 2")]),
        ({"start_positions": True}, [("start_positions", "must be an array of integers, got boolean")]),
        (
            {"input_ids": [1, 2], "start_positions": [2], "end_positions": -1},
            [
                ("start_positions[0]", "is past the end of input_ids (2 tokens)"),
                ("end_positions[0]", "must not be negative, got -1"),
                ("end_positions[0]", "is -1, before start_positions[0] (2)"),
            ],
        ),
        (
            {"start_positions": [0, 1], "end_positions": [1]},
            [("end_positions", "has 1 items but start_positions has 2")],
        ),
        (
            {"token_type_ids": [0, -(2**31) - 1]},
            [("token_type_ids[1]", "-2147483649 is outside the 32-bit integer range")],
        ),
    ],
)
def test_custom_problems(record: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems(record) == expected
