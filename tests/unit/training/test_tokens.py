"""Token counts: OpenAI's encodings offline, the cookbook's chat counting, model limits, the fallback estimate."""

from __future__ import annotations

import pytest

from app.training.formats import tokens
from app.training.formats.tokens import (
    count_chat_tokens,
    count_text_tokens,
    encoding_name,
    estimate_tokens,
    token_limit,
)

# The OpenAI cookbook's example conversation (How to count tokens with tiktoken): the API reports 129 prompt
# tokens for gpt-3.5-turbo and gpt-4, and 124 for gpt-4o and gpt-4o-mini.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain "
        "English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased "
        "leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


def test_counts_are_exact_with_the_bundled_encodings() -> None:
    assert tokens.EXACT is True


# Counts from tiktoken with the published o200k_base and cl100k_base ranks (SHA-256 checked).
@pytest.mark.parametrize(
    ("text", "o200k", "cl100k"),
    [
        ("", 0, 0),
        ("hello world", 2, 2),
        ("tiktoken is great!", 6, 6),
        ("antidisestablishmentarianism", 6, 6),
        ("お誕生日おめでとう", 8, 9),
        ("The quick brown fox jumps over the lazy dog.", 10, 10),
        ("  leading spaces\n\n\ttabs 1234567", 10, 10),
        ("def f(x):\n    return x ** 2\n", 11, 11),
        # Special-token strings in data are text, not control tokens.
        ("<|endoftext|>", 7, 7),
    ],
)
def test_text_tokens_match_tiktoken(text: str, o200k: int, cl100k: int) -> None:
    assert count_text_tokens(text) == o200k
    assert count_text_tokens(text, "gpt-4o") == o200k
    assert count_text_tokens(text, "gpt-3.5-turbo") == cl100k


@pytest.mark.parametrize(("model", "expected"), [("gpt-4o-mini", 124), ("gpt-4o", 124), ("gpt-3.5-turbo", 129)])
def test_chat_tokens_match_the_cookbook(model: str, expected: int) -> None:
    assert count_chat_tokens(COOKBOOK_MESSAGES, model=model) == expected


def test_chat_tokens_frame_each_message_and_count_names() -> None:
    user = {"role": "user", "content": "hello world"}
    # 3 for the reply priming, 3 per message, then role (1) and content (2).
    assert count_chat_tokens([user]) == 3 + 3 + 1 + 2
    assert count_chat_tokens([{**user, "name": "ana"}]) == count_chat_tokens([user]) + count_text_tokens("ana") + 1
    assert count_chat_tokens([]) == 3


def test_chat_tokens_of_parts_weights_tool_calls_and_tools() -> None:
    plain = [{"role": "assistant", "content": "hello world"}]
    assert count_chat_tokens([{"role": "assistant", "content": "hello world", "weight": 0}]) == count_chat_tokens(plain)
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": " world"}]}]
    assert count_chat_tokens(parts) == count_chat_tokens(plain)
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    with_call = [{"role": "assistant", "content": None, "tool_calls": [call]}]
    compact = '[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]'
    assert count_chat_tokens(with_call) == 3 + 3 + 1 + count_text_tokens(compact)
    tools = [{"type": "function", "function": {"name": "f"}}]
    tools_json = '[{"type":"function","function":{"name":"f"}}]'
    assert count_chat_tokens(plain, tools) == count_chat_tokens(plain) + count_text_tokens(tools_json)


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("some-future-model", "o200k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("ft:gpt-3.5-turbo-0125:acme::xyz", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("davinci-002", "cl100k_base"),
    ],
)
def test_encoding_of_a_model(model: str, encoding: str) -> None:
    assert encoding_name(model) == encoding


@pytest.mark.parametrize(
    ("model", "limit"),
    [
        ("gpt-4o-mini", 65_536),
        ("gpt-4o-mini-2024-07-18", 65_536),
        ("gpt-4o", 65_536),
        ("gpt-4.1", 65_536),
        ("gpt-4.1-mini-2025-04-14", 65_536),
        ("gpt-3.5-turbo", 16_385),
        ("ft:gpt-3.5-turbo-0125:acme::xyz", 16_385),
        ("unknown-model", 65_536),
    ],
)
def test_token_limit_of_a_model(model: str, limit: int) -> None:
    assert token_limit(model) == limit


def test_estimate_is_near_the_real_count_and_never_zero_for_text() -> None:
    text = (
        "Memora keeps documents and labeled training examples in PostgreSQL, so a team can search, "
        "deduplicate, split and export them with the tools they already use. "
    ) * 20
    real, estimate = count_text_tokens(text), estimate_tokens(text)
    assert 0.8 * real <= estimate <= 1.4 * real
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("お誕生日おめでとう") >= 6
