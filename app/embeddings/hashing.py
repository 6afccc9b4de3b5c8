"""Feature hashing of words and word pairs: vectors without a model, for tests and machines with nothing installed."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise

import numpy as np

from app.embeddings.base import Tokenizer, Vectors, WordTokenizer

_WORD = re.compile(r"\w+", re.UNICODE)
# Text without a single word still gets a unit vector: pgvector's cosine distance to a zero vector is NaN.
_NO_WORDS = "\x00"
_BIGRAM_WEIGHT = 0.5


@lru_cache(maxsize=1 << 16)
def _bucket(feature: str, dimensions: int) -> tuple[int, float]:
    """Index and sign of a feature; blake2b, because Python's own hash() differs between processes."""
    value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return value % dimensions, 1.0 if value >> 63 else -1.0


class HashingEmbedder:
    """Signed feature hashing of lower-cased word unigrams and bigrams, L2-normalised; deterministic everywhere."""

    provider = "hashing"
    max_input_tokens = 8192

    def __init__(self, dimensions: int, model: str = "hashing") -> None:
        if dimensions < 1:
            raise ValueError("dimensions must be at least 1")
        self.model = model
        self.dimensions = dimensions
        self.tokenizer: Tokenizer = WordTokenizer()

    def __repr__(self) -> str:
        return f"HashingEmbedder(dimensions={self.dimensions}, model={self.model!r})"

    def embed(self, texts: Sequence[str]) -> Vectors:
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower()) or [_NO_WORDS]
            for word in words:
                index, sign = _bucket(word, self.dimensions)
                vectors[row, index] += sign
            for first, second in pairwise(words):
                index, sign = _bucket(f"{first} {second}", self.dimensions)
                vectors[row, index] += sign * _BIGRAM_WEIGHT
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        # Features can cancel out in a tiny space (dimensions=1); such a row stays zero rather than NaN.
        np.divide(vectors, norms, out=vectors, where=norms > 0)
        return vectors
