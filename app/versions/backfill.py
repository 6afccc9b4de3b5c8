"""The backfill: vectors of a new embedding version for the chunks a collection already has.

A worker with no document to do (app/ingest/worker.py) fills the version that has waited longest, a batch of chunks
at a time: it leases the version (one worker a version; the lease runs out if it dies), reads the next chunks that
lack its vector, reuses the vector of any chunk of the same text already in the version or in another version of the
same model (so a version that changes only the metric, storage or index, or adds an adapter, embeds nothing), embeds
the rest with the version's model, and writes them in one transaction with its place (backfill_after), so a worker
that takes over goes on from there. Searches meanwhile read the active version, untouched. When no chunk after its
place lacks a vector, it checks the whole collection once more and marks the version ready; new chunks make it
building again (sql/idempotent/014-embedding-versions.sql), and the backfill picks them up.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine

from app.config import Settings
from app.embeddings.registry import get_embedder
from app.errors import AppError
from app.ingest import chunk_repository
from app.ingest.pipeline import embedding_input
from app.versions import repository
from app.versions.repository import ClaimedVersion, MissingChunk

log = logging.getLogger(__name__)

BATCH_CHUNKS = 256  # chunks read, embedded and written per turn: a few seconds of the local model's time


class Backfill:
    """Fills embedding versions that lack vectors, one batch of chunks per run_once."""

    def __init__(self, settings: Settings, engine: Engine, worker: str) -> None:
        self.settings = settings
        self.engine = engine
        self.worker = worker
        self.vectors = 0  # written so far

    def run_once(self) -> bool:
        """Do one batch for the version waiting longest; False when no version lacks vectors (or it failed)."""
        lease = timedelta(seconds=self.settings.worker_lease_seconds)
        with self.engine.begin() as conn:
            version = repository.claim(conn, self.worker, lease)
        if version is None:
            return False
        try:
            with self.engine.connect() as conn:
                chunks = repository.missing(conn, version, version.after, BATCH_CHUNKS)
            if not chunks:
                with self.engine.begin() as conn:
                    ready = repository.finish(conn, version, self.worker)
                if ready:
                    log.info("embedding version %s of collection %s is ready", version.number, version.collection_id)
                return ready is not None  # None: chunks are being written, so look again on a later turn
            rows = self._vectors(version, chunks)
            with self.engine.begin() as conn:
                repository.write(conn, version, rows)
                repository.advance(conn, version, self.worker, chunks[-1].id)
            self.vectors += len(rows)
            return True
        except Exception as exc:
            self._give_back(version, exc)
            return False

    def _vectors(self, version: ClaimedVersion, chunks: list[MissingChunk]) -> list[tuple[int, Any]]:
        """A vector for each of CHUNKS: reused from the version, or another of the same model, where a chunk of the
        same text has one, else embedded with the version's model."""
        with self.engine.connect() as conn:
            known: dict[bytes, Any] = {}
            for number in (version.number, *version.same_model):
                wanted = {chunk.content_hash for chunk in chunks} - known.keys()
                known |= chunk_repository.known_vectors(conn, version.collection_id, number, wanted)
        inputs = {c.content_hash: embedding_input(c.title, c.text) for c in chunks if c.content_hash not in known}
        if inputs:
            embedder = get_embedder(version.provider, version.model, version.dimensions, self.settings)
            embedded = embedder.embed(list(inputs.values()))
            known |= dict(zip(inputs, np.asarray(embedded, dtype=np.float32), strict=True))
        return [(chunk.id, known[chunk.content_hash]) for chunk in chunks]

    def _give_back(self, version: ClaimedVersion, exc: Exception) -> None:
        message = exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
        # What the provider refuses for good (a bad key, an unknown model) fails the version; the rest retries.
        permanent = isinstance(exc, AppError) and (exc.status < 500 or getattr(exc, "permanent", False))
        retry_in = timedelta(seconds=self.settings.worker_retry_seconds)
        log.warning("embedding version %s of collection %s: %s", version.number, version.collection_id, message)
        with self.engine.begin() as conn:
            repository.fail(conn, version, self.worker, message, permanent=permanent, retry_in=retry_in)
