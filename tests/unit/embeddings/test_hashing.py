"""The hashing provider (deterministic, normalised, closer for texts that share words) and the provider registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from app.config import Settings
from app.embeddings.hashing import HashingEmbedder
from app.embeddings.registry import PROVIDERS, default_model, get_embedder
from app.errors import InvalidInputError

TEXTS = ["The cat sat on the mat.", "the CAT sat on a mat", "Stock prices fell sharply on Monday."]


def test_shape_dtype_and_unit_norm() -> None:
    vectors = HashingEmbedder(64).embed([*TEXTS, "", "!!!"])
    assert vectors.shape == (5, 64)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)


def test_similar_texts_are_closer_than_unrelated_ones() -> None:
    cat, cat_again, stocks = HashingEmbedder(256).embed(TEXTS)
    assert cat @ cat_again > 0.6
    assert cat @ cat_again > cat @ stocks + 0.5


def test_case_and_punctuation_do_not_matter() -> None:
    upper, lower = HashingEmbedder(128).embed(["Hello, World!", "hello world"])
    np.testing.assert_array_equal(upper, lower)


def test_a_text_gets_the_same_vector_alone_and_in_a_batch() -> None:
    embedder = HashingEmbedder(128)
    batch = embedder.embed(TEXTS)
    for text, row in zip(TEXTS, batch, strict=True):
        np.testing.assert_array_equal(embedder.embed([text])[0], row)


def test_vectors_are_the_same_in_another_process() -> None:
    """Python's hash() is salted per process; the embedder must not depend on it."""
    script = (
        "from app.embeddings.hashing import HashingEmbedder; print(HashingEmbedder(32).embed(['a b c'])[0].tolist())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert np.allclose(json.loads(out.stdout), HashingEmbedder(32).embed(["a b c"])[0])


def test_word_tokenizer_and_attributes() -> None:
    embedder = HashingEmbedder(16, model="hashing")
    assert (embedder.provider, embedder.model, embedder.dimensions) == ("hashing", "hashing", 16)
    assert embedder.tokenizer.token_spans("Hi, there") == [(0, 2), (2, 3), (4, 9)]
    assert embedder.embed([]).shape == (0, 16)


def test_dimensions_must_be_positive() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        HashingEmbedder(0)


def test_registry_shares_one_embedder_per_model() -> None:
    settings = Settings()
    first = get_embedder("hashing", "hashing", 32, settings)
    assert isinstance(first, HashingEmbedder)
    assert first.dimensions == 32
    assert get_embedder("hashing", "hashing", 32, settings) is first
    assert get_embedder("hashing", "hashing", 64, settings) is not first


def test_registry_defaults() -> None:
    assert PROVIDERS == ("local", "openai", "hashing")
    assert [default_model(p) for p in PROVIDERS] == [
        ("all-MiniLM-L6-v2", 384),
        ("text-embedding-3-small", 1536),
        ("hashing", 256),
    ]


@pytest.mark.parametrize(
    ("provider", "model", "dimensions", "field"),
    [
        ("cohere", "embed-v3", 1024, "embedding_provider"),
        ("hashing", "hashing-v2", 256, "embedding_model"),
        ("hashing", "hashing", 0, "dimensions"),
        ("local", "all-MiniLM-L6-v2", 768, "dimensions"),
        ("local", "bge-small-en", 384, "embedding_model"),
        ("openai", "text-embedding-3-small", 2048, "dimensions"),
        ("openai", "text-embedding-ada-002", 512, "dimensions"),
    ],
)
def test_registry_rejects_what_cannot_work(provider: str, model: str, dimensions: int, field: str) -> None:
    with pytest.raises(InvalidInputError, match=f"^{field}: ") as caught:
        get_embedder(provider, model, dimensions, Settings(local_model_dir=None))
    assert [problem["field"] for problem in caught.value.problems] == [field]
    assert caught.value.status == 422
