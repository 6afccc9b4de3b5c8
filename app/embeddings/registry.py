"""Which providers exist, their default models, and one shared embedder per model and configuration."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Hashable

from app.config import Settings
from app.db.models import PROVIDERS  # one list, also behind the table's CHECK
from app.embeddings.base import Embedder
from app.errors import InvalidInputError

_DEFAULTS = {
    "local": ("all-MiniLM-L6-v2", 384),
    "openai": ("text-embedding-3-small", 1536),
    "hashing": ("hashing", 256),
}
# Most dimensions each OpenAI model gives; text-embedding-3 models shorten their vectors on request, ada-002 cannot.
_OPENAI_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}

# Providers whose model runs in this process, in milliseconds: no network, no waiting on anyone's server.
IN_PROCESS = frozenset({"local", "hashing"})

_LOCK = threading.Lock()
_EMBEDDERS: dict[tuple[Hashable, ...], Embedder] = {}


def default_model(provider: str) -> tuple[str, int]:
    """The model a provider uses when none is named, and its dimensions."""
    if provider not in _DEFAULTS:
        raise InvalidInputError.for_field(
            "embedding_provider", f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}"
        )
    return _DEFAULTS[provider]


# Most tokens one input may have, per provider (local: MiniLM's max_seq_length; openai: the embeddings API's limit).
_MAX_INPUT_TOKENS = {"local": 256, "openai": 8191, "hashing": 8192}
# Room a chunk leaves in that limit for the special tokens and the title the chunk is embedded with.
_TITLE_ROOM = 48


def max_chunk_tokens(provider: str) -> int:
    """The largest chunk size (in the model's tokens) whose embedding input is not cut short."""
    default_model(provider)
    return _MAX_INPUT_TOKENS[provider] - _TITLE_ROOM


def check_model(provider: str, model: str, dimensions: int, settings: Settings | None = None) -> None:
    """Reject a provider, model and dimensions that cannot go together, before anything is stored.

    Without settings, a local model other than MiniLM passes here and is checked when its embedder is built.
    """
    default_name, default_dimensions = default_model(provider)
    if dimensions < 1:
        raise InvalidInputError.for_field("dimensions", f"must be at least 1, not {dimensions}")
    if provider == "hashing" and model != default_name:
        raise InvalidInputError.for_field(
            "embedding_model", f"the hashing provider has one model, {default_name!r}, not {model!r}"
        )
    if provider == "local" and model == default_name and dimensions != default_dimensions:
        raise InvalidInputError.for_field(
            "dimensions", f"{model} gives {default_dimensions}-dimensional vectors, not {dimensions}"
        )
    if provider == "local" and model != default_name and settings is not None and settings.local_model_dir is None:
        raise InvalidInputError.for_field(
            "embedding_model", f"the local provider runs {default_name} unless MEMORA_LOCAL_MODEL_DIR is set"
        )
    most = _OPENAI_DIMENSIONS.get(model) if provider == "openai" else None
    if most is not None and (dimensions > most or (model == "text-embedding-ada-002" and dimensions != most)):
        allowed = f"exactly {most}" if model == "text-embedding-ada-002" else f"at most {most}"
        raise InvalidInputError.for_field("dimensions", f"{model} gives {allowed} dimensions, not {dimensions}")


def get_embedder(provider: str, model: str, dimensions: int, settings: Settings) -> Embedder:
    """The process's embedder for this model, built on first use and shared by every thread."""
    check_model(provider, model, dimensions, settings)
    key = (provider, model, dimensions, *_configuration(provider, settings))
    with _LOCK:
        if key not in _EMBEDDERS:
            _EMBEDDERS[key] = _build(provider, model, dimensions, settings)
        return _EMBEDDERS[key]


def _configuration(provider: str, settings: Settings) -> tuple[Hashable, ...]:
    """The settings an embedder of this provider is built from, so a change builds a new one."""
    if provider == "local":
        return (settings.local_model_dir,)
    if provider == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        fingerprint = hashlib.sha256(key.encode()).hexdigest()
        return (
            settings.openai_base_url,
            fingerprint,
            settings.openai_timeout_seconds,
            settings.openai_max_retries,
            settings.embed_batch_size,
        )
    return ()


def _build(provider: str, model: str, dimensions: int, settings: Settings) -> Embedder:
    # Imported here: onnxruntime and openai take a while to import, and most CLI commands need neither.
    if provider == "hashing":
        from app.embeddings.hashing import HashingEmbedder

        return HashingEmbedder(dimensions, model)
    if provider == "openai":
        from app.embeddings.openai_provider import OpenAIEmbedder

        return OpenAIEmbedder(
            model,
            dimensions,
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            timeout=settings.openai_timeout_seconds,
            max_retries=settings.openai_max_retries,
            batch_size=settings.embed_batch_size,
        )
    from app.embeddings.local import LocalEmbedder

    embedder = LocalEmbedder(settings.local_model_dir, model)
    if embedder.dimensions != dimensions:
        raise InvalidInputError.for_field(
            "dimensions", f"{model} in {settings.local_model_dir} gives {embedder.dimensions}-dimensional vectors"
        )
    return embedder
