"""The one small interface every embedding provider implements."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# A string, so that importing this module (as every provider, the chunker and the registry do) does not import numpy.
Vectors: TypeAlias = "npt.NDArray[np.float32]"


class Tokenizer(Protocol):
    """Splits text into the tokens of one embedding model."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans (start, end) of the model's tokens in text, in order, special tokens left out."""
        ...


class Embedder(Protocol):
    """Turns texts into vectors of one model; the model id is stored with every vector."""

    provider: str
    model: str
    dimensions: int
    max_input_tokens: int
    tokenizer: Tokenizer

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, shape (len(texts), dimensions), float32."""
        ...


_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class WordTokenizer:
    """Words and punctuation marks: the tokenizer of the hashing provider, and an estimate for models whose own
    tokenizer is not available offline."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [match.span() for match in _WORD.finditer(text)]
