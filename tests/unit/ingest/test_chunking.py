"""Chunking: the spec, each strategy, heading and page metadata, and invariants over many random documents."""

from __future__ import annotations

import random
import re
from bisect import bisect_left
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from app.embeddings.base import Tokenizer, WordTokenizer
from app.errors import InvalidInputError
from app.ingest.chunking import ChunkingSpec, TextChunk, chunk_text

FIXTURES = Path(__file__).parents[2] / "fixtures" / "ingest"
STRATEGIES = ("recursive", "tokens", "markdown")
WORDS = WordTokenizer()


class CharTokenizer:
    """One token per non-whitespace character."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [(i, i + 1) for i, c in enumerate(text) if not c.isspace()]


class ByteTokenizer:
    """Every character is a token, whitespace too; a non-ASCII character is two tokens with one span, as in
    byte-level BPE."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [(i, i + 1) for i, c in enumerate(text) for _ in range(1 if c.isascii() else 2)]


class CountingTokenizer:
    def __init__(self) -> None:
        self.calls = 0

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        self.calls += 1
        return WORDS.token_spans(text)


def chunks(content: str, strategy: str = "recursive", size: int = 256, overlap: int = 0, **kw: Any) -> list[TextChunk]:
    spec = ChunkingSpec.from_json({"strategy": strategy, "size": size, "overlap": overlap})
    return chunk_text(content, spec, kw.get("tokenizer", WORDS), kw.get("content_type", "text/plain"))


def texts(content: str, strategy: str = "recursive", size: int = 256, overlap: int = 0, **kw: Any) -> list[str]:
    return [c.text for c in chunks(content, strategy, size, overlap, **kw)]


# The spec


def test_spec_defaults_and_from_json() -> None:
    assert ChunkingSpec.from_json({}) == ChunkingSpec("recursive", 200, 32)
    assert ChunkingSpec.from_json({"strategy": "tokens", "size": 100, "overlap": 0}) == ChunkingSpec("tokens", 100, 0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"strategy": "sentences"}, "chunking.strategy: must be one of recursive, tokens, markdown"),
        ({"strategy": 3}, "chunking.strategy: must be one of"),
        ({"size": "256"}, "chunking.size: must be an integer"),
        ({"size": 12.5}, "chunking.size: must be an integer"),
        ({"size": True}, "chunking.size: must be an integer"),
        ({"size": 0}, "chunking.size: must be at least 1"),
        ({"overlap": -1}, "chunking.overlap: must not be negative"),
        ({"overlap": None}, "chunking.overlap: must be an integer"),
        ({"size": 32, "overlap": 32}, "chunking.overlap: must be smaller than chunking.size"),
        ({"sizes": 32}, "chunking.sizes: unknown field"),
    ],
)
def test_spec_errors_name_the_field(value: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        ChunkingSpec.from_json(value)
    assert caught.value.message.startswith(message)
    assert caught.value.status == 422


def test_spec_refuses_a_non_object() -> None:
    with pytest.raises(InvalidInputError, match="chunking: must be an object"):
        ChunkingSpec.from_json([256])  # type: ignore[arg-type]


def test_spec_constructor_validates_too() -> None:
    with pytest.raises(InvalidInputError, match=r"chunking\.overlap"):
        ChunkingSpec(size=10, overlap=10)


# Every strategy


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_blank_content_has_no_chunks(strategy: str) -> None:
    assert chunks(" \n\t\f\n", strategy) == []
    assert chunks("", strategy) == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_short_text_is_one_trimmed_chunk(strategy: str) -> None:
    [chunk] = chunks("\n\n  Hello there, world.  \n", strategy, size=16, overlap=4)
    assert (chunk.ordinal, chunk.text, chunk.char_start, chunk.char_end) == (0, "Hello there, world.", 4, 23)
    assert (chunk.token_count, chunk.metadata, chunk.title_suffix) == (5, {}, "")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_text_without_tokens_is_still_kept(strategy: str) -> None:
    class Silent:
        def token_spans(self, text: str) -> list[tuple[int, int]]:
            return []

    [chunk] = chunks("  ... \n", strategy, tokenizer=Silent())
    assert (chunk.text, chunk.char_start, chunk.token_count) == ("...", 2, 0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_text_is_tokenized_once(strategy: str) -> None:
    tokenizer = CountingTokenizer()
    result = chunks(" ".join(["word"] * 5000), strategy, size=50, overlap=10, tokenizer=tokenizer)
    assert len(result) > 100
    assert tokenizer.calls == 1


# recursive


def paragraph(seed: int, sentences: int, words: int) -> str:
    rng = random.Random(seed)
    return " ".join(
        " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega"]) for _ in range(words)).capitalize() + "."
        for _ in range(sentences)
    )


def test_recursive_packs_whole_paragraphs() -> None:
    paragraphs = [paragraph(i, 1, 5) for i in range(12)]  # 6 tokens each
    result = texts("\n\n".join(paragraphs), size=20)
    assert result == ["\n\n".join(paragraphs[i : i + 3]) for i in range(0, 12, 3)]


def test_recursive_splits_a_long_paragraph_at_sentences() -> None:
    text = paragraph(1, 12, 5)  # sentences of 6 tokens
    result = texts(text, size=20)
    assert len(result) == 4
    assert all(t.endswith(".") and t[0].isupper() for t in result)
    assert " ".join(result) == text


def test_recursive_splits_a_long_sentence_between_words() -> None:
    text = " ".join(["don't"] * 30)  # three tokens per word, none of them cut apart
    result = chunks(text, size=10)
    assert {c.text for c in result} == {"don't don't don't"}
    assert {c.token_count for c in result} == {9}


def test_recursive_overlap_starts_at_a_sentence_inside_the_previous_chunk() -> None:
    text = paragraph(2, 20, 5)  # sentences of 6 tokens
    result = chunks(text, size=30, overlap=8)
    for previous, chunk in pairwise(result):
        assert previous.char_start < chunk.char_start < previous.char_end < chunk.char_end
        shared = len(WORDS.token_spans(text[chunk.char_start : previous.char_end]))
        assert 4 <= shared <= 8
        assert text[chunk.char_start - 2 : chunk.char_start] == ". "


def test_recursive_keeps_other_chunks_when_one_paragraph_changes() -> None:
    paragraphs = [paragraph(i, 3, 9) for i in range(20)]  # 30 tokens, about size / 2
    before = texts("\n\n".join(paragraphs), size=64, overlap=8)
    for edited in (paragraph(100, 3, 9), paragraph(101, 3, 11), paragraph(102, 2, 9)):
        after = texts("\n\n".join([*paragraphs[:10], edited, *paragraphs[11:]]), size=64, overlap=8)
        assert len(set(after) - set(before)) <= 3
        assert len(set(before) - set(after)) <= 3
        assert after[:5] == before[:5]
        assert after[-5:] == before[-5:]


# tokens


def test_tokens_windows_have_a_fixed_stride() -> None:
    assert texts("abcdefghij", "tokens", size=4, overlap=1, tokenizer=CharTokenizer()) == ["abcd", "defg", "ghij"]
    assert texts("a b c d e f g", "tokens", size=3, tokenizer=CharTokenizer()) == ["a b c", "d e f", "g"]


def test_tokens_windows_count_model_tokens() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    result = chunks(text, "tokens", size=10, overlap=3)
    assert [c.token_count for c in result] == [10] * 13 + [9]
    assert [c.text.split()[0] for c in result] == [f"w{i}" for i in range(0, 98, 7)]


# Markdown


def test_markdown_sections_carry_their_heading_path() -> None:
    content = (FIXTURES / "sample.md").read_text()
    result = chunks(content, "markdown", size=64, content_type="text/markdown")
    assert [(c.text.split("\n")[0], c.metadata, c.title_suffix) for c in result] == [
        ("Notes kept before the title.", {}, ""),
        ("# Memora guide", {"headings": ["Memora guide"]}, "Memora guide"),
        ("## Setup", {"headings": ["Memora guide", "Setup"]}, "Memora guide > Setup"),
        ("### Database", {"headings": ["Memora guide", "Setup", "Database"]}, "Memora guide > Setup > Database"),
        ("## Search", {"headings": ["Memora guide", "Search"]}, "Memora guide > Search"),
    ]
    assert "# not a title" in result[0].text


def test_a_heading_with_nothing_under_it_stays_with_the_next_section() -> None:
    content = "# Guide\n\n## Install\n\nRun it.\n\n## Use\n\nCall it."
    assert texts(content, "markdown", content_type="text/markdown") == [
        "# Guide\n\n## Install\n\nRun it.",
        "## Use\n\nCall it.",
    ]


def test_a_long_markdown_section_is_split_and_each_part_keeps_the_path() -> None:
    body = "\n\n".join(paragraph(i, 2, 5) for i in range(10))
    content = f"# Title\n\nIntro.\n\n## Long\n\n{body}\n\n## End\n\nx"
    result = chunks(content, "markdown", size=30, overlap=5, content_type="text/markdown")
    assert len(result) > 4
    long = [c for c in result if c.title_suffix == "Title > Long"]
    assert len(long) == len(result) - 2
    assert all(c.metadata == {"headings": ["Title", "Long"]} for c in long)
    assert result[-1].text == "## End\n\nx"


@pytest.mark.parametrize("strategy", ["recursive", "tokens"])
def test_markdown_content_gets_heading_paths_under_any_strategy(strategy: str) -> None:
    content = "# A\n\n" + paragraph(1, 4, 5) + "\n\n## B\n\n" + paragraph(2, 4, 5)
    result = chunks(content, strategy, size=16, overlap=2, content_type="text/markdown")
    assert result[0].metadata == {"headings": ["A"]}
    assert result[-1].metadata == {"headings": ["A", "B"]}
    assert all(c.title_suffix == " > ".join(c.metadata["headings"]) for c in result)
    assert all(c.metadata == {} for c in chunks(content, strategy, size=16, overlap=2))


def test_recursive_markdown_prefers_cutting_before_headings_without_overlap_across_them() -> None:
    content = "# A\n\nOne. Two.\n\n## B\n\nThree. Four.\n\nFive. Six."
    result = texts(content, size=12, overlap=4, content_type="text/markdown")
    assert result == ["# A\n\nOne. Two.", "## B\n\nThree. Four.\n\nFive. Six."]


# PDF pages


def test_pdf_chunks_carry_their_pages() -> None:
    content = "Page one text.\fPage two text. More on two.\f\fPage four."
    result = chunks(content, "tokens", size=6, content_type="application/pdf")
    assert [(c.text, c.metadata) for c in result] == [
        ("Page one text.\fPage two", {"page": 1, "page_end": 2}),
        ("text. More on two.", {"page": 2}),
        ("Page four.", {"page": 4}),
    ]


# Invariants over random documents


def random_document(rng: random.Random) -> str:
    vocabulary = ["data", "Postgres", "vector", "café", "日本語", "x", "don't", "e.g.", "3.14", "a_b", "“quoted”"]
    pieces = [rng.choice(["", " ", "\n", "  \n\t"])]
    for _ in range(rng.randint(0, 120)):
        roll = rng.random()
        if roll < 0.6:
            pieces.append(rng.choice(vocabulary) + rng.choice([" ", " ", " ", ", ", ". ", "! ", "? ", ".) ", "\t"]))
        elif roll < 0.7:
            pieces.append(rng.choice(["\n", "\n\n", "\n \n\n", "\r\n\r\n", "\f", "\n\f\n"]))
        elif roll < 0.8:
            pieces.append("\n" + "#" * rng.randint(1, 4) + rng.choice([" ", ""]) + rng.choice(vocabulary) + "\n")
        elif roll < 0.85:
            pieces.append("\n```\n# code " + rng.choice(vocabulary) + "\n" + rng.choice(["```\n", ""]))
        elif roll < 0.9:
            pieces.append("z" * rng.randint(1, 40))
        else:
            pieces.append(rng.choice(["   ", "\n\n\n", ";", "—", "...", "#"]))
    return "".join(pieces)


def check_invariants(content: str, spec: ChunkingSpec, tokenizer: Tokenizer, content_type: str) -> None:
    result = chunk_text(content, spec, tokenizer, content_type)
    assert [c.ordinal for c in result] == list(range(len(result)))
    assert bool(result) == bool(content.strip())
    covered = bytearray(len(content))
    for chunk in result:
        assert content[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.text
        assert chunk.text == chunk.text.strip()
        assert chunk.token_count == len(tokenizer.token_spans(chunk.text)) <= spec.size
        covered[chunk.char_start : chunk.char_end] = b"\x01" * len(chunk.text)
        if content_type == "application/pdf":
            page, page_end = 1 + content.count("\f", 0, chunk.char_start), 1 + content.count("\f", 0, chunk.char_end)
            assert chunk.metadata.get("page") == page
            assert chunk.metadata.get("page_end", page) == page_end
        if content_type == "text/markdown" or spec.strategy == "markdown":
            assert chunk.title_suffix == " > ".join(chunk.metadata.get("headings", []))
        else:
            assert chunk.title_suffix == ""
            assert "headings" not in chunk.metadata
    assert all(covered[i] for i, c in enumerate(content) if not c.isspace())
    for previous, chunk in pairwise(result):
        assert previous.char_start < chunk.char_start
        assert previous.char_end < chunk.char_end
        if spec.strategy != "markdown":
            shared = content[chunk.char_start : previous.char_end]
            assert len(tokenizer.token_spans(shared)) <= spec.overlap
    assert result == chunk_text(content, spec, tokenizer, content_type)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("tokenizer", [WORDS, CharTokenizer(), ByteTokenizer()], ids=["words", "chars", "bytes"])
def test_invariants_hold_for_random_documents(strategy: str, tokenizer: Tokenizer) -> None:
    rng = random.Random(f"{strategy}-{type(tokenizer).__name__}")
    for _ in range(150):
        content = random_document(rng)
        size = rng.choice([2, 3, 5, 8, 13, 40, 200])
        spec = ChunkingSpec(strategy, size, rng.randint(0, size - 1))  # type: ignore[arg-type]
        content_type = rng.choice(["text/plain", "text/markdown", "application/pdf"])
        check_invariants(content, spec, tokenizer, content_type)


def test_tokens_windows_share_exactly_the_overlap() -> None:
    rng = random.Random(7)
    for _ in range(100):
        content = re.sub(r"\s+", " ", random_document(rng))
        spans = WORDS.token_spans(content)
        size = rng.randint(2, 30)
        overlap = rng.randint(0, size - 1)
        result = chunks(content, "tokens", size, overlap)
        starts = [bisect_left(spans, (c.char_start, 0)) for c in result]
        assert starts == list(range(0, len(starts) * (size - overlap), size - overlap))
        assert all(c.token_count == size for c in result[:-1])
