"""Following a collection's ingestion as it happens (`memora ingest --wait`), whichever process does the work.

Two sources, each for what it knows: the documents' statuses say what is finished, and the workers' BatchProgress
messages (app/ingest/worker.py) say how far the batches in hand are, one message per embedding call. A follower
LISTENs before it looks at the table, so no message it could use is sent while it is not yet listening.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.collections import repository as collections_repository
from app.collections import service as collections
from app.config import Settings
from app.ingest import repository
from app.ingest.worker import BatchProgress, Worker, progress_channel

log = logging.getLogger(__name__)

INTERVAL = 0.5  # seconds between looks at the documents' statuses, the messages read meanwhile
FINAL_READ = 0.05  # seconds to wait for messages still on their way once the queue is empty


@dataclass(frozen=True)
class Snapshot:
    """A collection's ingestion at one moment: its documents by status (from the table), and the texts that the
    batches being worked on need embedded and have embedded so far (from the workers' messages)."""

    documents: dict[str, int]
    embedded: int = 0
    texts: int = 0

    @property
    def finished(self) -> int:
        """Documents ready or failed."""
        return self.documents.get("ready", 0) + self.documents.get("failed", 0)

    @property
    def queued(self) -> int:
        """Documents pending or being processed."""
        return self.documents.get("pending", 0) + self.documents.get("processing", 0)


def follow(settings: Settings, engine: Engine, collection_name: str) -> Iterator[Snapshot]:
    """Snapshots of the collection's ingestion, one at the start, then one every INTERVAL seconds in which something
    changed, until its queue is empty. When no worker is connected to the database, one runs in this process until
    the snapshots end."""
    with Session(engine) as db:
        collection_id = collections.get(db, collection_name).id
    with repository.listener(engine, "memora-cli-follow", progress_channel(settings.db_schema)) as listener:
        stop = threading.Event()
        helper: threading.Thread | None = None
        with engine.connect() as conn:
            alone = repository.workers_connected(conn) == 0
        if alone:
            log.info("no worker is connected to the database: running one in this process")
            helper = threading.Thread(target=Worker(settings, engine).run, args=(stop,), daemon=True)
            helper.start()
        try:
            batches: dict[str, BatchProgress] = {}
            last: Snapshot | None = None
            while True:
                with engine.connect() as conn:
                    counts = collections_repository.status_counts(conn, [collection_id])[collection_id]
                finished = Snapshot(counts).queued == 0
                if finished:  # the last messages were sent before the last batch was written: take them too
                    _read(listener, collection_id, batches, FINAL_READ)
                values = batches.values()
                snapshot = Snapshot(counts, sum(b.embedded for b in values), sum(b.texts for b in values))
                if snapshot != last:
                    yield snapshot
                    last = snapshot
                if finished:
                    return
                _read(listener, collection_id, batches, INTERVAL)
        finally:
            stop.set()
            if helper is not None:
                helper.join()


def _read(
    listener: psycopg.Connection[Any], collection_id: int, batches: dict[str, BatchProgress], wait: float
) -> None:
    """The progress of the collection's batches that arrives on LISTENER within WAIT seconds, into BATCHES."""
    for note in listener.notifies(timeout=wait):
        progress = BatchProgress.parse(note.payload)
        if progress is not None and progress.collection_id == collection_id:
            batches[progress.batch] = progress
