"""Cutting a document's content into chunks whose sizes count tokens of the collection's embedding model."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal, cast, get_args

from app.embeddings.base import Tokenizer
from app.errors import InvalidInputError

Strategy = Literal["recursive", "tokens", "markdown"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)

# How good a place the gap before a token is to end a chunk: higher is better.
_INSIDE_WORD, _WORD, _LINE, _SENTENCE, _PARAGRAPH, _HEADING = range(6)
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
_SENTENCE_END = frozenset(".!?\u2026\u3002\uff01\uff1f")  # ellipsis, ideographic and fullwidth
_CLOSERS = frozenset("\"')]}\u00bb\u201d\u2019")  # closing quotes and brackets
_SENTENCE_END_OR_CLOSER = _SENTENCE_END | _CLOSERS
_ATX_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t\r]*")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")


@dataclass(frozen=True)
class ChunkingSpec:
    """How a collection cuts its documents; size and overlap count tokens of the embedding model."""

    strategy: Strategy = "recursive"
    size: int = 200
    overlap: int = 32

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InvalidInputError.for_field("chunking.strategy", f"must be one of {', '.join(STRATEGIES)}")
        if self.size < 1:
            raise InvalidInputError.for_field("chunking.size", "must be at least 1")
        if self.overlap < 0:
            raise InvalidInputError.for_field("chunking.overlap", "must not be negative")
        if self.overlap >= self.size:
            raise InvalidInputError.for_field("chunking.overlap", "must be smaller than chunking.size")

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ChunkingSpec:
        """The spec in a collection's chunking object; InvalidInputError names the first bad field."""
        if not isinstance(value, Mapping):
            raise InvalidInputError.for_field("chunking", "must be an object")
        unknown = sorted(set(value) - {"strategy", "size", "overlap"})
        if unknown:
            raise InvalidInputError.for_field(f"chunking.{unknown[0]}", "unknown field")
        strategy = value.get("strategy", "recursive")
        if not isinstance(strategy, str) or strategy not in STRATEGIES:
            raise InvalidInputError.for_field("chunking.strategy", f"must be one of {', '.join(STRATEGIES)}")
        numbers = {name: value.get(name, getattr(cls, name)) for name in ("size", "overlap")}
        for name, number in numbers.items():
            if not isinstance(number, int) or isinstance(number, bool):
                raise InvalidInputError.for_field(f"chunking.{name}", "must be an integer")
        return cls(cast(Strategy, strategy), numbers["size"], numbers["overlap"])


@dataclass(frozen=True)
class TextChunk:
    """One chunk: content[char_start:char_end] == text."""

    ordinal: int
    text: str
    char_start: int
    char_end: int
    token_count: int
    metadata: dict[str, Any]
    title_suffix: str = ""


@dataclass(frozen=True)
class Heading:
    """An ATX heading line of a Markdown text, outside fenced code."""

    offset: int
    end: int
    level: int
    title: str


def markdown_headings(content: str) -> list[Heading]:
    """The `#` headings of CONTENT in order, skipping fenced code blocks and headings without text."""
    headings: list[Heading] = []
    fence = ""
    offset = 0
    for line in content.split("\n"):
        start, offset = offset, offset + len(line) + 1
        if not line or line.lstrip(" ")[:1] not in ("#", "`", "~"):
            continue
        if fence:
            closing = _FENCE.fullmatch(line.rstrip())
            if closing and closing[1][0] == fence[0] and len(closing[1]) >= len(fence) and not closing[2].strip():
                fence = ""
        elif opening := _FENCE.fullmatch(line):
            if not (opening[1][0] == "`" and "`" in opening[2]):
                fence = opening[1]
        elif (match := _ATX_HEADING.fullmatch(line)) and match[2]:
            headings.append(Heading(start, start + len(line), len(match[1]), match[2].strip()))
    return headings


class _Tokens:
    """The content's tokens once, as atoms: runs of tokens whose character spans overlap cannot be cut apart."""

    def __init__(self, content: str, spans: list[tuple[int, int]]) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.cum = [0]  # cum[k]: tokens in atoms[:k]
        pending = 0  # empty-span tokens still count against the size
        for start, end in spans:
            if end <= start:
                pending += 1
            elif self.starts and start < self.ends[-1]:
                self.ends[-1] = max(self.ends[-1], end)
                self.cum[-1] += 1 + pending
                pending = 0
            else:
                self.starts.append(start)
                self.ends.append(end)
                self.cum.append(self.cum[-1] + 1 + pending)
                pending = 0
        self.n = len(self.starts)
        self.cum[-1] += pending
        self.content = content

    def levels(self, headings: list[Heading]) -> list[int]:
        """levels[k]: how good a cut the gap before atom k is."""
        content, levels = self.content, [_INSIDE_WORD] * (self.n + 1)
        for k in range(1, self.n):
            g0, g1 = self.ends[k - 1], self.starts[k]
            if g0 == g1:
                continue
            gap = content[g0:g1]
            if not gap.isspace() and not any(c.isspace() for c in gap):
                continue  # characters the tokenizer skipped, inside a word
            if "\n" in gap and _BLANK_LINE.search(gap):
                levels[k] = _PARAGRAPH
            elif content[g0 - 1] in _SENTENCE_END_OR_CLOSER and self._ends_sentence(g0):
                levels[k] = _SENTENCE
            elif "\n" in gap or "\f" in gap:
                levels[k] = _LINE
            else:
                levels[k] = _WORD
        # A heading sticks to what follows it: the text under it, or the next heading when it has none.
        for heading in headings:
            k = bisect_left(self.starts, heading.end)
            levels[k] = min(levels[k], _WORD)
        for previous, heading in zip([None, *headings], headings, strict=False):
            k = bisect_left(self.starts, heading.offset)
            if 0 < k < self.n and (previous is None or self.content[previous.end : heading.offset].strip()):
                levels[k] = _HEADING
        return levels

    def _ends_sentence(self, end: int) -> bool:
        i = end - 1
        while i > max(end - 4, 0) and self.content[i] in _CLOSERS:
            i -= 1
        return self.content[i] in _SENTENCE_END

    def furthest(self, start: int, size: int, last: int) -> int:
        """The furthest atom index that keeps atoms[start:end] within SIZE tokens (at least one atom)."""
        return max(start + 1, bisect_right(self.cum, self.cum[start] + size, start + 1, last + 1) - 1)


def _windows(t: _Tokens, spec: ChunkingSpec) -> list[tuple[int, int]]:
    """Fixed windows of spec.size tokens, each starting spec.size - spec.overlap tokens after the last."""
    ranges: list[tuple[int, int]] = []
    start = 0
    while True:
        end = t.furthest(start, spec.size, t.n)
        ranges.append((start, end))
        if end >= t.n:
            return ranges
        following = bisect_left(t.cum, t.cum[start] + spec.size - spec.overlap, start + 1, end)
        start = following if t.cum[end + 1] - t.cum[following] <= spec.size else end


def _pack(t: _Tokens, levels: list[int], first: int, last: int, spec: ChunkingSpec) -> list[tuple[int, int]]:
    """Atoms[first:last] packed greedily: each chunk ends at the best cut within spec.size tokens (highest level,
    then furthest, among cuts that add at least a quarter of spec.size new tokens); the next starts at the best cut
    (highest level, then earliest) between spec.overlap and spec.overlap / 2 tokens before that end, and right at it
    after a Markdown heading cut. A chunk depends only on the text from its start on, so an edit moves chunks only
    until the packing falls back into step."""
    ranges: list[tuple[int, int]] = []
    start = previous_end = first
    cum, fill = t.cum, spec.size // 4
    while True:
        limit = t.furthest(start, spec.size, last)
        low = max(previous_end + 1, start + 1)
        if limit >= last:
            end = last
        elif limit <= low:
            end = low
        else:
            end, best = limit, -1
            for k in range(limit, low - 1, -1):
                if cum[k] - cum[previous_end] < fill and best >= 0:
                    break
                if levels[k] > best:
                    end, best = k, levels[k]
                    if best == _HEADING:
                        break
        ranges.append((start, end))
        if end >= last:
            return ranges
        following = end
        if spec.overlap and levels[end] != _HEADING:
            most = bisect_left(cum, cum[end] - spec.overlap, start + 1, end)
            least = bisect_right(cum, cum[end] - max(1, spec.overlap // 2), start + 1, end) - 1
            best = -1
            for k in range(most, least + 1):
                if levels[k] > best:
                    following, best = k, levels[k]
            if cum[end + 1] - cum[following] > spec.size:
                following = end
        start, previous_end = following, end


def _sections(t: _Tokens, headings: list[Heading]) -> list[int]:
    """Atom indexes where Markdown sections start; a heading with no text under it stays with the next section."""
    cuts = [0]
    for i, heading in enumerate(headings):
        if i and not t.content[headings[i - 1].end : heading.offset].strip():
            continue
        k = bisect_left(t.starts, heading.offset)
        if cuts[-1] < k < t.n:
            cuts.append(k)
    return [*cuts, t.n]


def _heading_paths(headings: list[Heading]) -> list[list[str]]:
    """paths[i]: the titles of the headings open just after headings[i]."""
    stack: list[Heading] = []
    paths = []
    for heading in headings:
        while stack and stack[-1].level >= heading.level:
            stack.pop()
        stack.append(heading)
        paths.append([h.title for h in stack])
    return paths


def chunk_text(
    content: str, spec: ChunkingSpec, tokenizer: Tokenizer, content_type: str = "text/plain"
) -> list[TextChunk]:
    """CONTENT cut into chunks of at most spec.size tokens; content[c.char_start:c.char_end] == c.text."""
    markdown = content_type == "text/markdown" or spec.strategy == "markdown"
    headings = markdown_headings(content) if markdown else []
    t = _Tokens(content, tokenizer.token_spans(content))
    if t.n == 0:
        ranges = [(0, 0)]
    elif spec.strategy == "tokens":
        ranges = _windows(t, spec)
    else:
        levels = t.levels(headings)
        bounds = _sections(t, headings) if spec.strategy == "markdown" else [0, t.n]
        ranges = [r for a, b in pairwise(bounds) for r in _pack(t, levels, a, b, spec)]

    offsets, paths = [h.offset for h in headings], _heading_paths(headings)
    page_breaks = [m.start() for m in re.finditer("\f", content)] if content_type == "application/pdf" else []
    chunks: list[TextChunk] = []
    for a, b in ranges:
        start = t.starts[a] if a else 0
        end = t.starts[b] if b < t.n else len(content)
        text = content[start:end]
        stripped = text.strip()
        if not stripped or (chunks and start + len(text.rstrip()) <= chunks[-1].char_end):
            continue  # blank, or only an overlap with whitespace tokens after it
        start += len(text) - len(text.lstrip())
        end = start + len(stripped)
        if chunks and chunks[-1].char_start == start:
            chunks.pop()  # whitespace tokens made the previous chunk a prefix of this one
        while a < b and t.ends[a] <= start:
            a += 1
        while b > a and t.starts[b - 1] >= end:
            b -= 1
        metadata: dict[str, Any] = {}
        path = paths[i] if (i := bisect_right(offsets, start) - 1) >= 0 else []
        if path:
            metadata["headings"] = path
        if content_type == "application/pdf":
            metadata["page"] = 1 + bisect_left(page_breaks, start)
            if (page_end := 1 + bisect_left(page_breaks, end)) != metadata["page"]:
                metadata["page_end"] = page_end
        chunks.append(TextChunk(len(chunks), stripped, start, end, t.cum[b] - t.cum[a], metadata, " > ".join(path)))
    return chunks
