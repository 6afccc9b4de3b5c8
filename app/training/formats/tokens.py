"""Token counts for fine-tuning data, offline, with the encodings of OpenAI's models.

tiktoken downloads its BPE ranks on first use, so it cannot count here. toktok-rs compiles o200k_base and
cl100k_base into its wheel and gives tiktoken's counts exactly (checked against the published ranks). Were it
missing, counts fall back to an estimate that runs about 10% high on English and code, and EXACT says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

try:
    # The tokenizer object, which toktok's README points to for the full API: its count() takes ~0.4 us a text,
    # where the public batch_count() spends ~30 us a call, too slow one example at a time.
    from toktok import _encoding as _load_encoding  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - only on a platform without a toktok-rs wheel
    _load_encoding = None

EXACT: bool = _load_encoding is not None
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TOKEN_LIMIT = 65_536

# The cookbook's num_tokens_from_messages: each message is framed by 3 tokens, a name costs 1 more, and every
# reply is primed with <|start|>assistant<|message|>.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

_CL100K_MODELS = (
    "gpt-3.5",
    "gpt-4-",
    "text-embedding-3",
    "text-embedding-ada",
    "davinci-002",
    "babbage-002",
)
# Words, digit groups, punctuation runs and white space, roughly as o200k_base splits text before merging.
_PIECES = re.compile(r"\s?[^\W\d_]+|\d{1,3}|\s?[^\w\s]+|\s+(?!\S)|\s+")


def _base(model: str) -> str:
    """A fine-tuned model's base model: ft:gpt-4o-mini-2024-07-18:org::id -> gpt-4o-mini-2024-07-18."""
    return model.removeprefix("ft:").split(":", 1)[0]


def encoding_name(model: str) -> str:
    """The tokenizer of MODEL: cl100k_base for GPT-3.5, GPT-4 (not 4o) and older; o200k_base otherwise."""
    base = _base(model)
    return "cl100k_base" if base == "gpt-4" or base.startswith(_CL100K_MODELS) else "o200k_base"


@lru_cache(maxsize=64)
def token_limit(model: str) -> int:
    """The most tokens one fine-tuning example of MODEL may have.

    gpt-4o, gpt-4o-mini and the gpt-4.1 family take 65,536; gpt-3.5-turbo 16,385. A model not known here gets
    65,536, the limit of the models that fine-tune today.
    """
    return 16_385 if _base(model).startswith("gpt-3.5-turbo") else DEFAULT_TOKEN_LIMIT


def estimate_tokens(text: str) -> int:
    """A token count without the encoding: a piece of ASCII costs 1 token per 8 bytes, other text 1 per 4."""
    count = 0
    for match in _PIECES.finditer(text):
        piece = match.group()
        count += 1 + len(piece.encode()) // (8 if piece.isascii() else 4)
    return count


@lru_cache(maxsize=64)
def _counter(model: str) -> Callable[[str], int]:
    """The count function for MODEL, built once per model name (loading an encoding takes ~0.1 s)."""
    if _load_encoding is None:  # pragma: no cover - see EXACT
        return estimate_tokens
    count: Callable[[str], int] = _load_encoding(encoding_name(model)).count
    return count


def count_text_tokens(text: str, model: str = DEFAULT_MODEL) -> int:
    """Tokens in TEXT for MODEL; special-token strings such as <|endoftext|> count as ordinary text."""
    return _counter(model)(text)


def count_chat_tokens(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Any] | None = None, model: str = DEFAULT_MODEL
) -> int:
    """Tokens in a conversation for MODEL, as the OpenAI cookbook counts them (num_tokens_from_messages).

    Every string value of a message counts, and a name 1 more. Content parts count their text; tool calls,
    function calls and TOOLS count as their compact JSON, an approximation of how OpenAI renders them.
    """
    count = _counter(model)
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if isinstance(value, str):
                total += count(value)
                if key == "name":
                    total += TOKENS_PER_NAME
            elif value is None or key == "weight":
                continue
            elif key == "content" and isinstance(value, list):
                total += sum(count(part.get("text") or "") for part in value if isinstance(part, dict))
            else:
                total += count(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    if tools:
        total += count(json.dumps(tools, ensure_ascii=False, separators=(",", ":")))
    return total
