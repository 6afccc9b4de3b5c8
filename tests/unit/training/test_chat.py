"""The chat format: OpenAI's fine-tuning rules for conversations, with exact field paths and line numbers."""

from __future__ import annotations

from typing import Any

import pytest

from app.training.formats.records import ExampleRow
from app.training.formats.tokens import count_chat_tokens
from tests.unit.training.support import parsed, problems, row_of

USER = {"role": "user", "content": "Hi"}
ASSISTANT = {"role": "assistant", "content": "Hello"}
MESSAGE_KEYS = "role, content, name, function_call, tool_calls, tool_call_id, weight, refusal"
ROLES = "system, user, assistant, tool or function"
NO_CONTENT = "is required unless an assistant message makes a tool or function call"
NO_ASSISTANT = ("messages", "must have at least one assistant message")
ONLY_ASSISTANT = "is only allowed on assistant messages"


def chat(*messages: Any, **extra: Any) -> dict[str, Any]:
    return {"messages": list(messages), **extra}


def call(**function: Any) -> dict[str, Any]:
    return {"id": "c1", "type": "function", "function": function}


def test_fixture_good_lines() -> None:
    good = {n: r for n, r in parsed("chat.jsonl").items() if isinstance(r, ExampleRow)}
    assert sorted(good) == [1, 2, 3, 9]
    assert all(row.format == "chat" and row.output is None for row in good.values())
    assert set(good[2].input) == {"messages", "tools", "parallel_tool_calls"}
    assert good[2].input["parallel_tool_calls"] is False
    assert good[3].input.keys() == {"messages"}
    assert good[3].metadata == {"reviewer": "kim", "quality": 4}
    assert good[3].source == {"collection": "atlas", "external_id": "doc-7"}
    assert good[3].input["messages"][2]["weight"] == 0
    assert set(good[9].input) == {"messages", "functions"}
    assert good[1].token_count == count_chat_tokens(good[1].input["messages"])
    assert good[2].token_count == count_chat_tokens(good[2].input["messages"], good[2].input["tools"])


def test_fixture_bad_lines() -> None:
    bad = {n: [p.to_dict() for p in r] for n, r in parsed("chat.jsonl").items() if isinstance(r, list)}
    assert bad == {
        4: [
            {"line": 4, "field": "messages[1].role", "reason": f"unknown role 'bot': expected {ROLES}"},
            {"line": 4, "field": "messages", "reason": "must have at least one assistant message"},
        ],
        5: [
            {"line": 5, "field": "id", "reason": "is not a field of format chat (put extra data in metadata)"},
            {
                "line": 5,
                "field": "messages[2].role",
                "reason": "is 'user': a conversation must end with an assistant message",
            },
        ],
        6: [
            {
                "line": 6,
                "field": "messages[0].timestamp",
                "reason": f"is not allowed in a message: expected {MESSAGE_KEYS}",
            },
            {"line": 6, "field": "messages[0].weight", "reason": ONLY_ASSISTANT},
            {"line": 6, "field": "messages[1].weight", "reason": "must be 0 or 1, got 2"},
        ],
        7: [{"line": 7, "field": "", "reason": "must be a JSON object, got array"}],
        8: [{"line": 8, "field": "messages", "reason": "must have at least one assistant message"}],
        10: [
            {
                "line": 10,
                "field": "messages[1].tool_calls[0].function.arguments",
                "reason": "must be a string (the arguments as JSON text), got object",
            },
            {"line": 10, "field": "tools[0].type", "reason": "must be 'function', got 'retrieval'"},
        ],
    }


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"messages": "hi"}, [("messages", "must be an array of messages, got string")]),
        ({"messages": []}, [("messages", "must not be empty")]),
        (chat(USER, "Hello"), [("messages[1]", "must be an object, got string"), NO_ASSISTANT]),
        (chat({"content": "Hi"}, ASSISTANT), [("messages[0].role", f"is required: one of {ROLES}")]),
        (chat({"role": 1, "content": "Hi"}, ASSISTANT), [("messages[0].role", f"unknown role 1: expected {ROLES}")]),
        (chat({"role": "user"}, ASSISTANT), [("messages[0].content", NO_CONTENT)]),
        (chat({"role": "user", "content": None}, ASSISTANT), [("messages[0].content", NO_CONTENT)]),
        (chat({"role": "assistant"}), [("messages[0].content", NO_CONTENT)]),
        (
            chat(USER, {"role": "assistant", "content": 5}),
            [("messages[1].content", "must be a string or an array of text parts, got number")],
        ),
        (
            chat({"role": "user", "content": ["Hi", {"type": "image_url"}, {"type": "text", "text": 1}]}, ASSISTANT),
            [
                ("messages[0].content[0]", "must be an object, got string"),
                ("messages[0].content[1].type", "must be 'text', got 'image_url'"),
                ("messages[0].content[2].text", "must be a string, got number"),
            ],
        ),
        (
            chat({**USER, "tool_calls": []}, ASSISTANT),
            [
                ("messages[0].tool_calls", ONLY_ASSISTANT),
                ("messages[0].tool_calls", "must be a non-empty array of tool calls, got array"),
            ],
        ),
        (
            chat(USER, {"role": "assistant", "tool_calls": [call(arguments="{}"), "f"]}),
            [
                ("messages[1].tool_calls[0].function.name", "is required"),
                ("messages[1].tool_calls[1]", "must be an object, got string"),
            ],
        ),
        (
            chat(
                USER,
                {"role": "assistant", "tool_calls": [{"type": "code", "function": {"name": "f", "arguments": ""}}]},
            ),
            [("messages[1].tool_calls[0].type", "must be 'function', got 'code'")],
        ),
        (
            chat(USER, {"role": "assistant", "function_call": {"name": "f"}}),
            [("messages[1].function_call.arguments", "must be a string (the arguments as JSON text), got null")],
        ),
        (chat(USER, {**ASSISTANT, "weight": True}), [("messages[1].weight", "must be 0 or 1, got True")]),
        (chat(USER, {**ASSISTANT, "weight": 0.5}), [("messages[1].weight", "must be 0 or 1, got 0.5")]),
        (
            chat({**USER, "name": 7}, {**ASSISTANT, "refusal": False}),
            [
                ("messages[0].name", "must be a string, got number"),
                ("messages[1].refusal", "must be a string, got boolean"),
            ],
        ),
        (
            chat(USER, {"role": "function", "content": "5"}, ASSISTANT),
            [("messages[1].name", "is required on function messages")],
        ),
        (chat(USER, ASSISTANT, tools={"type": "function"}), [("tools", "must be an array of tools, got object")]),
        (chat(USER, ASSISTANT, tools=["f"]), [("tools[0]", "must be an object, got string")]),
        (
            chat(USER, ASSISTANT, tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]),
            [("tools[0].function.parameters", "must be a JSON Schema object, got array")],
        ),
        (chat(USER, ASSISTANT, tools=[{"type": "function"}]), [("tools[0].function", "is required")]),
        (chat(USER, ASSISTANT, functions=[{"description": "d"}]), [("functions[0].name", "is required")]),
        (chat(USER, ASSISTANT, functions={}), [("functions", "must be an array of functions, got object")]),
        (
            chat(USER, ASSISTANT, parallel_tool_calls="yes"),
            [("parallel_tool_calls", "must be true or false, got string")],
        ),
    ],
)
def test_problems(record: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems(record) == expected


def test_every_problem_of_a_record_is_reported() -> None:
    record = chat({"role": "bot", "content": 1, "x": 1}, {"role": "user", "weight": 1}, extra=True)
    assert len(problems(record)) == 7


def test_an_assistant_that_calls_a_tool_needs_no_content() -> None:
    tool_call = call(name="f", arguments="{}")
    messages = [
        USER,
        {"role": "assistant", "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": "c1", "content": "1"},
    ]
    assert row_of(chat(*messages, ASSISTANT)).input == {"messages": [*messages, ASSISTANT]}
    assert row_of(chat(USER, {"role": "assistant", "content": None, "tool_calls": [tool_call]})).format == "chat"


def test_null_optional_keys_are_left_out() -> None:
    row = row_of(chat(USER, ASSISTANT, tools=None, metadata=None))
    assert (row.input, row.metadata) == ({"messages": [USER, ASSISTANT]}, {})


def test_over_the_models_token_limit() -> None:
    record = chat({"role": "user", "content": "word " * 20_000}, ASSISTANT)
    assert row_of(record).token_count == count_chat_tokens(record["messages"])
    count = count_chat_tokens(record["messages"], model="gpt-3.5-turbo")
    assert count > 16_385
    assert problems(record, model="gpt-3.5-turbo") == [
        ("", f"has {count:,} tokens, more than the 16,385 of gpt-3.5-turbo fine-tuning")
    ]
