"""Adapters trained by the worker: what POST /v1/collections/{name}/embeddings/train asks for.

The request makes a version in status 'training' whose adapter holds the request (dataset, base, seed). A worker with
no document to do leases it, as the backfill leases a version (renewing the lease as training goes on, so no other
worker takes it over while it is alive), trains the adapter on the dataset's judged queries, and stores the weights
and the report; the version is then 'building', and the backfill copies the base's vectors into it. A request that
cannot be trained (a dataset changed since it was checked) fails the version with the reason.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.adapters import service
from app.adapters.train import Options
from app.config import Settings
from app.db.models import EmbeddingVersion
from app.db.query import Query
from app.errors import AppError
from app.eval.datasets import dataset_queries

log = logging.getLogger(__name__)

_CLAIM = Query("""
UPDATE memora.embedding_version v
SET leased_by = %(worker)s, lease_until = now() + %(lease)s
FROM (
    SELECT v.collection_id, v.number, c.name FROM memora.embedding_version v
    JOIN memora.collection c ON c.id = v.collection_id
    WHERE v.status = 'training' AND (v.lease_until IS NULL OR v.lease_until < now())
    ORDER BY v.created_at, v.collection_id, v.number
    LIMIT 1
    FOR UPDATE OF v SKIP LOCKED
) free
WHERE v.collection_id = free.collection_id AND v.number = free.number
RETURNING v.collection_id, v.number, free.name, v.adapter
""")
_RENEW = Query("""
UPDATE memora.embedding_version SET lease_until = now() + %(lease)s
WHERE collection_id = %(c)s AND number = %(v)s AND leased_by = %(worker)s
""")
_FAIL = Query("""
UPDATE memora.embedding_version SET status = 'failed', error = %(error)s, leased_by = NULL, lease_until = NULL
WHERE collection_id = %(c)s AND number = %(v)s AND leased_by = %(worker)s
""")


class Trainer:
    """Trains the adapter versions that wait for it, one per run_once."""

    def __init__(self, settings: Settings, engine: Engine, worker: str) -> None:
        self.settings, self.engine, self.worker = settings, engine, worker
        self.lease = timedelta(seconds=settings.worker_lease_seconds)

    def run_once(self) -> bool:
        """Train the version waiting longest; False when none waits."""
        with self.engine.begin() as conn:
            row = _CLAIM.run(conn, {"worker": self.worker, "lease": self.lease}).first()
        if row is None:
            return False
        collection_id, number, name, adapter = tuple(row)
        params = {"c": collection_id, "v": number, "worker": self.worker, "lease": self.lease}
        renewed = [time.monotonic()]

        def step(description: str, total: int | None) -> Any:
            log.info("adapter version %s of collection %s: %s", number, name, description)

            def advance() -> None:
                if time.monotonic() - renewed[0] > self.lease.total_seconds() / 3:
                    with self.engine.begin() as conn:
                        _RENEW.run(conn, params)
                    renewed[0] = time.monotonic()

            advance()
            return advance

        try:
            request = adapter["request"]
            with Session(self.engine) as db:
                queries = dataset_queries(db, request["pairs"])
            options = Options(seed=int(request.get("seed", 0)))
            weights, report = service.train_adapter(self.engine, self.settings, name, queries,
                                                    base=int(adapter["base"]), options=options, step=step)  # fmt: skip
            with Session(self.engine) as db, db.begin():
                version = db.get_one(EmbeddingVersion, (collection_id, number), with_for_update=True)
                if version.leased_by != self.worker:
                    return True  # dropped, or taken over: another worker's work now
                service.write_weights(db, version, weights)
                version.adapter = {**report, "request": request}
                version.status, version.leased_by, version.lease_until = "building", None, None
        except Exception as exc:
            message = exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
            log.warning("adapter version %s of collection %s failed: %s", number, name, message)
            with self.engine.begin() as conn:
                _FAIL.run(conn, {**params, "error": message[:4000]})
        return True
