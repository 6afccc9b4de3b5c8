"""The local provider: all-MiniLM-L6-v2 (int8 ONNX) from the bundled packages, or from a directory of one's own."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import pytest

from app.config import Settings
from app.embeddings import local
from app.embeddings.local import LocalEmbedder, bundled_files
from app.embeddings.registry import get_embedder
from app.errors import EmbeddingProviderError, InvalidInputError

FOOD, BREAD, HORSE = "A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


def test_shape_norm_and_attributes(embedder: LocalEmbedder) -> None:
    vectors = embedder.embed([FOOD, BREAD, "", "x " * 1000])
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (embedder.provider, embedder.model, embedder.dimensions) == ("local", "all-MiniLM-L6-v2", 384)
    assert embedder.max_input_tokens == 256
    assert embedder.embed([]).shape == (0, 384)


def test_meaning_orders_similarity(embedder: LocalEmbedder) -> None:
    food, bread, horse = embedder.embed([FOOD, BREAD, HORSE])
    assert food @ bread > 0.7
    assert food @ bread > food @ horse + 0.3


def test_deterministic_and_batch_equals_single(embedder: LocalEmbedder) -> None:
    texts = [
        HORSE,
        "short",
        FOOD * 12,
        BREAD,
        "Une phrase en français, avec des accents.",
        *(f"item {i}" for i in range(9)),
    ]
    batch = embedder.embed(texts)
    np.testing.assert_array_equal(batch, embedder.embed(texts))
    singles = np.stack([embedder.embed([text])[0] for text in texts])
    np.testing.assert_allclose(batch, singles, atol=1e-5)


def test_long_texts_are_truncated_to_256_tokens(embedder: LocalEmbedder) -> None:
    words = [f"word{i}" for i in range(400)]
    head = " ".join(words[:300])
    np.testing.assert_allclose(embedder.embed([head]), embedder.embed([" ".join(words)]), atol=1e-6)


def test_token_spans_align_with_the_text(embedder: LocalEmbedder) -> None:
    text = "Tokenizers split unaffordable words: Zürich's café, 3.14!"
    pieces = [text[start:end] for start, end in embedder.tokenizer.token_spans(text)]
    assert pieces[:9] == ["Token", "izer", "s", "split", "una", "ff", "ord", "able", "words"]
    assert pieces[10:14] == ["Zürich", "'", "s", "café"]
    assert "".join(pieces) == "".join(text.split())


def test_token_spans_are_not_truncated(embedder: LocalEmbedder) -> None:
    assert len(embedder.tokenizer.token_spans("word " * 1000)) == 1000


def test_model_from_a_directory(tmp_path: Path, embedder: LocalEmbedder) -> None:
    files = bundled_files()
    (tmp_path / "model.onnx").symlink_to(files.model)
    shutil.copy(files.tokenizer, tmp_path / "tokenizer.json")
    custom = LocalEmbedder(tmp_path, model="my-minilm")
    assert (custom.model, custom.dimensions) == ("my-minilm", 384)
    np.testing.assert_allclose(custom.embed([FOOD]), embedder.embed([FOOD]), atol=1e-6)


def test_directory_without_model_onnx(tmp_path: Path) -> None:
    shutil.copy(bundled_files().tokenizer, tmp_path / "tokenizer.json")
    with pytest.raises(EmbeddingProviderError, match=r"model\.onnx does not exist"):
        LocalEmbedder(tmp_path, model="my-minilm")


@pytest.mark.parametrize(("constant", "cache", "file"), [
    ("BUNDLED_TOKENIZER_SHA256", "_TOKENIZERS", "tokenizer.json"),
    ("BUNDLED_MODEL_SHA256", "_SESSIONS", "model.onnx"),
])  # fmt: skip
def test_bundled_files_must_match_their_checksums(
    monkeypatch: pytest.MonkeyPatch, constant: str, cache: str, file: str
) -> None:
    monkeypatch.setattr(local, constant, "0" * 64)
    monkeypatch.setattr(local, cache, {})
    with pytest.raises(EmbeddingProviderError, match=rf"{file} has sha256 [0-9a-f]{{64}}, expected 0000"):
        LocalEmbedder().embed(["hello"])


def test_bundled_model_is_the_only_name_without_a_directory() -> None:
    with pytest.raises(InvalidInputError, match="embedding_model"):
        LocalEmbedder(model="bge-small-en")


def test_registry_builds_the_local_model_from_settings(tmp_path: Path, embedder: LocalEmbedder) -> None:
    assert get_embedder("local", "all-MiniLM-L6-v2", 384, Settings(local_model_dir=None)).dimensions == 384
    files = bundled_files()
    (tmp_path / "model.onnx").symlink_to(files.model)
    (tmp_path / "tokenizer.json").symlink_to(files.tokenizer)
    settings = Settings(local_model_dir=tmp_path)
    assert get_embedder("local", "my-minilm", 384, settings).model == "my-minilm"
    with pytest.raises(InvalidInputError, match=r"^dimensions: my-minilm in .* gives 384-dimensional vectors"):
        get_embedder("local", "my-minilm", 768, settings)


def test_threads_share_one_session(monkeypatch: pytest.MonkeyPatch, embedder: LocalEmbedder) -> None:
    created: list[str] = []
    real = ort.InferenceSession

    def counting(path: str, *args: Any, **kwargs: Any) -> Any:
        created.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(local, "_SESSIONS", {})
    monkeypatch.setattr(ort, "InferenceSession", counting)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda text: LocalEmbedder().embed([text]), [FOOD, BREAD, HORSE, FOOD]))
    assert len(created) == 1
    np.testing.assert_allclose(results[0], results[3])
    np.testing.assert_allclose(results[1], embedder.embed([BREAD]), atol=1e-6)
