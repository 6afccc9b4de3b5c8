"""The ingestion worker: claims queued documents, chunks and embeds them, writes the result.

Workers share the queue in the database (memora.document): any number of them, in any number of processes, claim
with FOR UPDATE SKIP LOCKED and hold a lease while they work. A worker that dies leaves a lease that runs out, and
the next worker takes the document over. They sleep on LISTEN "<schema>.document" and poll as a fallback.

A claimed batch is written in one transaction once all of it is embedded, so its documents stay 'processing' while
a slow model works through their chunks. Meanwhile the worker says how far it is after every embedding call: a
BatchProgress on channel "<schema>.ingest_progress" (app/ingest/progress.py follows it), sent in a transaction of
its own, since a NOTIFY inside the write transaction would arrive at commit, when the news is old.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.adapters.jobs import Trainer
from app.config import Settings
from app.embeddings.base import Embedder
from app.embeddings.registry import get_embedder
from app.errors import AppError, EmbeddingProviderError
from app.ingest import chunk_repository, pipeline, repository
from app.ingest.pipeline import PlannedChunk
from app.ingest.repository import ClaimedDocument
from app.observe import metrics
from app.observe.context import for_document
from app.versions.backfill import Backfill

log = logging.getLogger(__name__)

MAX_RETRY_WAIT = timedelta(minutes=10)
MAX_RECONNECT_WAIT = 60.0
RENEWAL_RETRY_SECONDS = 1.0  # after a failed lease renewal, try again this soon rather than a third of a lease later
# While documents keep coming, the document counts are folded after every this many batches of them.
COMPACT_EVERY = 20
# While documents keep coming, a batch of a new embedding version's backfill after every this many batches of them.
BACKFILL_EVERY = 4
Work = tuple[ClaimedDocument, list[PlannedChunk], dict[bytes, Any]]


def progress_channel(schema: str) -> str:
    """The channel workers publish BatchProgress on: one per schema, as the queue's wake-up channel is."""
    return f"{schema}.ingest_progress"


@dataclass(frozen=True)
class BatchProgress:
    """How many of the texts that one claimed batch needs embedded in a collection are embedded so far.

    Each message holds the batch's running total, not an increment, so a follower that starts listening late, or
    misses a message, is right again at the next one.
    """

    collection_id: int
    batch: str  # the worker's name and a number: unique across workers and processes
    embedded: int
    texts: int

    def payload(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def parse(cls, payload: str) -> BatchProgress | None:
        """The progress PAYLOAD holds, None for a payload of another shape."""
        try:
            fields = json.loads(payload)
            return cls(
                int(fields["collection_id"]), str(fields["batch"]), int(fields["embedded"]), int(fields["texts"])
            )
        except (ValueError, TypeError, KeyError):
            return None


@dataclass
class WorkerStats:
    documents: int = 0
    failed: int = 0
    superseded: int = 0
    texts_embedded: int = 0
    taken_over: int = 0  # documents claimed from a worker whose lease ran out
    leases_renewed: int = 0  # renewals of a batch's leases (one per batch and renewal)
    leases_lost: int = 0  # documents found no longer ours at a renewal (edited, or taken over)
    woken: int = 0  # sleeps ended by a NOTIFY rather than by the poll interval
    reconnects: int = 0


def reconnect_delay(poll_seconds: float, failures: int) -> float:
    """The wait before reconnecting after FAILURES outages in a row: the poll interval, doubled each time, at most
    a minute."""
    return min(MAX_RECONNECT_WAIT, poll_seconds * 2.0 ** (failures - 1))


def _wait_on(stop: threading.Event, seconds: float) -> None:
    stop.wait(seconds)


class Worker:
    """One ingestion worker; run() loops until stopped, run_once() does one batch.

    WAIT(stop, seconds) is how run() waits before reconnecting (tests pass one that only counts). ASLEEP is set
    while the worker waits for work on its LISTEN connection, so one can tell it is idle.
    """

    def __init__(
        self, settings: Settings, engine: Engine, *, wait: Callable[[threading.Event, float], object] = _wait_on
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stats = WorkerStats()
        self.asleep = threading.Event()
        self._wait = wait
        self._failures = 0  # outages in a row: reset by every poll of the queue that reached the database
        self._channel = f"{settings.db_schema}.document"
        self._progress_channel = progress_channel(settings.db_schema)
        self._groups = itertools.count(1)
        self.backfill = Backfill(settings, engine, self.name)
        self.trainer = Trainer(settings, engine, self.name)

    def run(self, stop: threading.Event, *, until_empty: bool = False) -> WorkerStats:
        """Work until STOP is set (a batch in progress is finished first) or, with UNTIL_EMPTY, the queue is empty.

        A lost database (restart, failover) does not end the worker: it waits and reconnects, longer after each
        outage in a row; once it reaches the database again the count starts over, so a database restarted once a
        day costs a second each time, not a minute forever after the fifth.
        """
        self._failures = 0
        while not stop.is_set():
            try:
                if self._serve(stop, until_empty):
                    break
            except (psycopg.Error, SQLAlchemyError, OSError) as exc:
                self._failures += 1
                self.stats.reconnects += 1
                delay = reconnect_delay(self.settings.worker_poll_seconds, self._failures)
                log.warning("worker %s lost the database (%s); retrying in %.1fs", self.name, exc, delay)
                self._wait(stop, delay)
        return self.stats

    def _serve(self, stop: threading.Event, until_empty: bool) -> bool:
        """The work loop on one LISTEN connection; True when the queue ran empty (and no embedding version lacks
        vectors) and UNTIL_EMPTY asked to stop."""
        with repository.listener(self.engine, "memora-worker-listen", self._channel) as listener:
            log.info("worker %s listening on %s", self.name, self._channel)
            batches = 0  # document batches in a row
            while not stop.is_set():
                claimed = self.run_once()
                self._failures = 0  # the queue was reached: the next outage is a first one again
                # Documents first; when none waits (and every few batches while they keep coming), the vectors of a
                # new embedding version (app/versions/backfill.py); when neither, an adapter to train (minutes of
                # work, so only then: app/adapters/jobs.py).
                batches = batches + 1 if claimed else 0
                if not claimed or batches % COMPACT_EVERY == 0:
                    with self.engine.begin() as conn:  # reading a collection's counts stays a sum of a few rows
                        repository.compact_counts(conn)
                backfilled = (not claimed or batches % BACKFILL_EVERY == 0) and self.backfill.run_once()
                if claimed or backfilled or self.trainer.run_once():
                    continue
                with self.engine.connect() as conn:
                    wait = repository.next_available_in(conn)
                if wait is None and until_empty:
                    return True
                self._sleep(listener, stop, min(self.settings.worker_poll_seconds, wait or float("inf")))
        return False

    def run_once(self) -> int:
        """Claim one batch and process it; the number of documents claimed."""
        lease = timedelta(seconds=self.settings.worker_lease_seconds)
        with self.engine.begin() as conn:
            claimed = repository.claim(conn, self.name, self.settings.worker_batch_size, lease)
        for doc in claimed:
            if doc.taken_over_from is not None:
                self.stats.taken_over += 1
                log.warning(
                    "worker %s took document %s over from %s, whose lease ran out %.1fs ago (attempt %s)",
                    self.name, doc.id, doc.taken_over_from, doc.lease_expired_for or 0.0, doc.attempts,
                )  # fmt: skip
        if claimed:
            # Renewals stop before the write: one waiting on the write's row locks would find the documents done.
            with self._keeping_leases(claimed, lease):
                work = self._prepare(claimed)
            self._write(work)
        return len(claimed)

    @contextlib.contextmanager
    def _keeping_leases(self, claimed: list[ClaimedDocument], lease: timedelta) -> Iterator[None]:
        """Renew the batch's leases every third of a lease while it is worked on, so a slow batch (a long document,
        a slow embedding service) is not taken over; a worker that dies stops renewing, and its leases run out.

        A renewal that fails (the database away) is logged and tried again a second later: two missed renewals
        still leave a third of the lease. Should the lease run out all the same and another worker take a document
        over, the renewal notices (stats.leases_lost), and so does the write (repository.lock_if_still_ours), which
        leaves that document to the other worker: no chunk is written twice.
        """
        done = threading.Event()
        interval = lease.total_seconds() / 3

        def renew() -> None:
            held = len(claimed)
            pause = interval
            while not done.wait(pause):
                try:
                    with self.engine.begin() as conn:
                        still_ours = repository.renew_leases(conn, claimed, self.name, lease)
                except Exception as exc:
                    log.warning("worker %s could not renew its leases (%s); retrying in %.0fs", self.name, exc,
                                min(RENEWAL_RETRY_SECONDS, interval))  # fmt: skip
                    pause = min(RENEWAL_RETRY_SECONDS, interval)
                    continue
                pause = interval
                self.stats.leases_renewed += 1
                if still_ours < held:
                    self.stats.leases_lost += held - still_ours
                    log.warning("worker %s no longer holds %d of its %d documents (edited or taken over)",
                                self.name, held - still_ours, len(claimed))  # fmt: skip
                    held = still_ours

        keeper = threading.Thread(target=renew, name="memora-lease-keeper", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()

    def _sleep(self, listener: psycopg.Connection[Any], stop: threading.Event, seconds: float) -> None:
        """Until a NOTIFY arrives, STOP is set or SECONDS pass (in short slices, so SIGTERM is served quickly)."""
        deadline = time.monotonic() + seconds
        self.asleep.set()
        try:
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                for _ in listener.notifies(timeout=min(left, 0.5), stop_after=1):
                    self.stats.woken += 1
                    return
        finally:
            self.asleep.clear()

    def _prepare(self, claimed: list[ClaimedDocument]) -> list[Work]:
        """Chunks and vectors of the claimed documents; those that fail are given back on the way."""
        plans: dict[int, list[PlannedChunk]] = {}
        embedders: dict[int, Embedder] = {}
        for doc in claimed:
            try:
                embedders[doc.id] = get_embedder(doc.provider, doc.model, doc.dimensions, self.settings)
                plans[doc.id] = pipeline.plan(doc, embedders[doc.id].tokenizer)
            except Exception as exc:
                self._give_back(doc, exc)

        vectors = self._vectors([doc for doc in claimed if doc.id in plans], plans, embedders)
        return [(doc, plans[doc.id], vectors[doc.id]) for doc in claimed if doc.id in plans and doc.id in vectors]

    def _vectors(
        self,
        docs: list[ClaimedDocument],
        plans: dict[int, list[PlannedChunk]],
        embedders: dict[int, Embedder],
    ) -> dict[int, dict[bytes, Any]]:
        """Vectors per document for every hash it needs: reused from the collection, else embedded (batched
        across the documents that share a model)."""
        groups: dict[tuple[int, int], list[ClaimedDocument]] = defaultdict(list)
        for doc in docs:
            groups[(doc.collection_id, doc.embedding_version)].append(doc)
        result: dict[int, dict[bytes, Any]] = {}
        for (collection_id, version), members in groups.items():
            try:
                result |= self._group_vectors(collection_id, version, members, plans, embedders)
            except Exception as exc:
                # A failure of the request as such (a bad key, a server error) is every document's: no one by one.
                if len(members) == 1 or (isinstance(exc, EmbeddingProviderError) and exc.whole_request):
                    for doc in members:
                        self._give_back(doc, exc)
                    continue
                # One bad document must not fail the others: embed them one at a time.
                for doc in members:
                    try:
                        result |= self._group_vectors(collection_id, version, [doc], plans, embedders)
                    except Exception as single:
                        self._give_back(doc, single)
        return result

    def _group_vectors(
        self,
        collection_id: int,
        version: int,
        members: list[ClaimedDocument],
        plans: dict[int, list[PlannedChunk]],
        embedders: dict[int, Embedder],
    ) -> dict[int, dict[bytes, Any]]:
        # Every hash a document will hold: kept chunks may be renumbered or duplicated, new ones need a vector.
        needed = {doc.id: {chunk.content_hash for chunk in plans[doc.id]} for doc in members}
        with self.engine.connect() as conn:
            known = chunk_repository.known_vectors(conn, collection_id, version, set().union(*needed.values()))
        inputs = {
            chunk.content_hash: chunk.embedding_input
            for doc in members
            for chunk in plans[doc.id]
            if chunk.content_hash not in known
        }
        progress = BatchProgress(collection_id, f"{self.name}:{next(self._groups)}", 0, len(inputs))
        try:
            known |= self._embed(embedders[members[0].id], inputs, progress)
        except Exception:
            if inputs:  # withdrawn: its texts are counted again when retried
                self._publish(replace(progress, embedded=0, texts=0))
            raise
        return {doc.id: {digest: known[digest] for digest in needed[doc.id]} for doc in members}

    def _embed(self, embedder: Embedder, inputs: dict[bytes, str], progress: BatchProgress) -> dict[bytes, Any]:
        """Vectors of INPUTS, EMBED_BATCH_SIZE texts a call, with PROGRESS published before the first and after
        each."""
        digests, texts = list(inputs), list(inputs.values())
        size = self.settings.embed_batch_size
        vectors: dict[bytes, Any] = {}
        if texts:
            self._publish(progress)
        for start in range(0, len(texts), size):
            batch = embedder.embed(texts[start : start + size])
            vectors.update(zip(digests[start : start + size], batch, strict=True))
            self._publish(replace(progress, embedded=start + len(batch)))
        self.stats.texts_embedded += len(texts)
        metrics.chunks_embedded(texts)
        return vectors

    def _publish(self, progress: BatchProgress) -> None:
        """Tell whoever listens how far the batch is. Progress is news, not state: a failure to send it is logged
        and the work goes on."""
        try:
            with self.engine.begin() as conn:
                repository.notify(conn, self._progress_channel, progress.payload())
        except (psycopg.Error, SQLAlchemyError) as exc:
            log.warning("worker %s could not publish its progress: %s", self.name, exc)

    def _write(self, items: list[Work]) -> None:
        """Write the batch in one transaction (one COPY of chunks, one of vectors); should that fail, write its
        documents one by one, so a document that cannot be written fails alone."""
        if not items:
            return
        try:
            self._write_together(items)
        except Exception as exc:
            if len(items) == 1:
                self._give_back(items[0][0], exc)
                return
            for item in items:
                try:
                    self._write_together([item])
                except Exception as single:
                    self._give_back(item[0], single)

    def _write_together(self, items: list[Work]) -> None:
        with self.engine.begin() as conn:
            # Another embedding version made active since the claim: these vectors are the old one's, so the
            # document goes back to the queue, to be embedded with the new one.
            active = repository.lock_active_versions(conn, {doc.collection_id for doc, _, _ in items})
            stale = [doc for doc, _, _ in items if active.get(doc.collection_id) != doc.embedding_version]
            repository.requeue(conn, stale, self.name)
            # Edited meanwhile (queued again), or taken over after the lease ran out: that work wins.
            fresh = [item for item in items if item[0] not in stale]
            ours = [item for item in fresh if repository.lock_if_still_ours(conn, item[0], self.name)]
            pipeline.write_many(conn, ours)
            if ours:
                repository.finish(conn, [doc for doc, _, _ in ours])
        self.stats.superseded += len(items) - len(ours)
        self.stats.documents += len(ours)
        metrics.documents_ready([doc for doc, _, _ in ours])

    @for_document  # its log lines carry the id of the request that created or last changed the document
    def _give_back(self, doc: ClaimedDocument, exc: Exception) -> None:
        message = exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
        # Bad input (4xx) and what the provider refuses for good fail at once; the rest (5xx, 429, timeouts) retry.
        permanent = isinstance(exc, AppError) and (exc.status < 500 or getattr(exc, "permanent", False))
        if permanent or doc.attempts >= self.settings.worker_max_attempts:
            retry_in = None
            self.stats.failed += 1
            log.warning("document %s failed after %s attempt(s): %s", doc.id, doc.attempts, message)
        else:
            seconds = self.settings.worker_retry_seconds * 2 ** (doc.attempts - 1)
            retry_in = min(timedelta(seconds=seconds), MAX_RETRY_WAIT)
            log.info("document %s will retry in %s: %s", doc.id, retry_in, message)
        with self.engine.begin() as conn:
            repository.give_back(conn, doc, self.name, message, retry_in)
