"""The prompt of an answer: instructions, numbered sources, the question; and the [n] citations of a reply."""

from __future__ import annotations

import re
from collections.abc import Sequence

from openai.types.chat import ChatCompletionMessageParam

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources you are given, never what you know otherwise. "
    "Cite the sources each statement rests on with their numbers in square brackets, like [1] or [2][3]. "
    "If the sources do not contain the answer, say that you do not know; do not guess."
)

# [3], [1, 2] and [1][2]; a number that names no source is left out.
_CITATION = re.compile(r"\[(\d{1,4}(?:\s*,\s*\d{1,4})*)\]")


def source_block(n: int, title: str, text: str) -> str:
    """Source N as the prompt shows it: its number and title on one line, its text below."""
    heading = f"[{n}] {title}".rstrip()
    return f"{heading}\n{text.strip()}"


def messages(
    question: str, blocks: Sequence[str], system_prompt: str | None = None
) -> list[ChatCompletionMessageParam]:
    """The conversation sent to the model: instructions, then the sources and the question in one user turn."""
    sources = "\n\n".join(blocks)
    user = f"Sources:\n\n{sources}\n\nQuestion: {question.strip()}"
    return [{"role": "system", "content": system_prompt or SYSTEM_PROMPT}, {"role": "user", "content": user}]


def citations(answer: str, count: int) -> list[int]:
    """The source numbers ANSWER cites, 1..COUNT, in order of first citation."""
    cited: dict[int, None] = {}
    for match in _CITATION.finditer(answer):
        for part in match.group(1).split(","):
            if 1 <= (n := int(part)) <= count:
                cited[n] = None
    return list(cited)
