"""A search query's vector, computed while the collection is looked up.

The model does not need the database and the lookup does not need the vector, so for a model that runs in this
process (app/embeddings/registry.IN_PROCESS) the two run at once: the query starts embedding in a thread with the
model the collection had at its last lookup in this process, and the lookup's answer confirms the guess. A
collection made again under the same name with another model is embedded again, after the lookup, so the vector is
always the collection's model's. Remote providers are never called before the lookup: a wrong guess would cost a
paid call and seconds.
"""

from __future__ import annotations

import contextvars
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Collection
from app.embeddings.registry import IN_PROCESS, get_embedder
from app.errors import AppError, EmbeddingProviderError
from app.observe.timing import part
from app.search.repository import Vector

Model = tuple[str, str, int]  # provider, model, dimensions

# The model of each collection looked up lately, by name; names only enter after a lookup found them.
_MODELS: dict[str, Model] = {}
_REMEMBERED = 1024
_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None


def start(settings: Settings, name: str, query: str) -> tuple[Model, Future[Vector]] | None:
    """Begin embedding QUERY with the model collection NAME had when last looked up, if it runs in this process."""
    model = _MODELS.get(name)
    if model is None or model[0] not in IN_PROCESS:
        return None
    context = contextvars.copy_context()  # the request's id in the model's log lines
    return model, _pool().submit(context.run, _embed, settings, model, query)


def finish(
    db: Session,
    settings: Settings,
    collection: Collection,
    query: str,
    started: tuple[Model, Future[Vector]] | None,
    model: Model | None = None,
) -> Vector:
    """QUERY's vector under MODEL (default COLLECTION's, its active embedding version's): the one STARTED, if it
    guessed the model, else computed now."""
    active = (collection.embedding_provider, collection.embedding_model, collection.dimensions)
    model = model or active
    with _LOCK:
        if len(_MODELS) >= _REMEMBERED and collection.name not in _MODELS:
            _MODELS.clear()
        _MODELS[collection.name] = active  # the guess is for searches of the active version, the usual ones
    if started is not None and started[0] == model:
        with part("embed"):
            return started[1].result()
    # End the read before calling a remote model: it may take seconds, and the connection should not sit idle in a
    # transaction meanwhile. A model in this process takes milliseconds, less than the commit and the next
    # transaction's start would cost (COMMIT, the pool's ping, BEGIN, SET LOCAL statement_timeout: 4+ round trips).
    if model[0] not in IN_PROCESS:
        with part("lookup"):
            db.commit()
    with part("embed"):
        return _embed(settings, model, query)


def _embed(settings: Settings, model: Model, query: str) -> Vector:
    provider, name, dimensions = model
    embedder = get_embedder(provider, name, dimensions, settings)
    try:
        vectors = embedder.embed([query])
    except AppError:
        raise
    except Exception as exc:
        raise EmbeddingProviderError(f"embedding model {name} ({provider}) could not embed the query: {exc}") from exc
    return np.asarray(vectors[0], dtype=np.float32)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:
            # As many as the API's own threads would embed at once on a busy machine; the model uses every CPU.
            _POOL = ThreadPoolExecutor(max_workers=4 * (os.cpu_count() or 1), thread_name_prefix="memora-embed")
        return _POOL
