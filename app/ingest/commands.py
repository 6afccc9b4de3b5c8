"""What `memora ingest` and `memora worker` do, with progress bars for people at a terminal."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.collections import service as collections
from app.collections.schemas import CollectionCreate
from app.config import Settings
from app.db.models import Chunk
from app.errors import AppError, InvalidInputError
from app.ingest import repository, service
from app.ingest.parsing import parse_file
from app.ingest.service import DocumentInput
from app.ingest.worker import Worker, WorkerStats

log = logging.getLogger(__name__)

SUFFIXES = {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl"}
UPSERT_BATCH = 200


def run_worker(settings: Settings, engine: Engine, *, until_empty: bool) -> WorkerStats:
    """Run one worker in this process until SIGTERM/SIGINT (after the batch in hand) or an empty queue."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return Worker(settings, engine).run(stop, until_empty=until_empty)


def find_files(paths: list[Path], pattern: str | None) -> list[tuple[Path, str]]:
    """The files under PATHS (directories are walked) that Memora can read, or that match PATTERN, each with its
    key: the path inside the directory given, or the bare name of a file given, as a multipart upload names it, so
    the key does not depend on where the command runs."""
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            candidates = sorted(p for p in path.rglob(pattern or "*") if p.is_file())
            found += [
                (p, p.relative_to(path).as_posix()) for p in candidates if pattern or p.suffix.lower() in SUFFIXES
            ]
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise InvalidInputError(f"{path}: no such file or directory")
    return found


def ingest(
    settings: Settings, engine: Engine, paths: list[Path], collection_name: str, *, pattern: str | None, create: bool
) -> tuple[int, list[str]]:
    """Parse and upsert the files; returns how many documents were created or changed, and the files that failed."""
    files = find_files(paths, pattern)
    with Session(engine) as db, db.begin():
        if create and not _exists(db, collection_name):
            collections.create(db, CollectionCreate(name=collection_name))
        collections.get(db, collection_name)
    changed, failed = 0, list[str]()
    with _progress() as progress:
        task = progress.add_task("documents", total=len(files))
        for batch in _batches(files, failed, progress, task):
            with Session(engine) as db, db.begin():
                collection = collections.get(db, collection_name)
                results = service.upsert(db, collection, batch)
            changed += sum(result.action != "unchanged" for result in results)
    return changed, failed


def wait_for_worker(settings: Settings, engine: Engine, collection_name: str) -> dict[str, int]:
    """Follow the worker until the collection's queue is empty; start one here if none is connected."""
    stop = threading.Event()
    helper: threading.Thread | None = None
    if not _worker_connected(engine):
        log.info("no worker is connected to the database: running one in this process")
        helper = threading.Thread(target=Worker(settings, engine).run, args=(stop,), daemon=True)
        helper.start()
    try:
        with _progress() as progress:
            documents = progress.add_task("embedded documents", total=None)
            chunks = progress.add_task("chunks", total=None)
            while True:
                counts, chunk_count = _queue_state(engine, collection_name)
                done = counts.get("ready", 0) + counts.get("failed", 0)
                progress.update(documents, completed=done, total=sum(counts.values()))
                progress.update(chunks, completed=chunk_count, total=chunk_count)
                if counts.get("pending", 0) + counts.get("processing", 0) == 0:
                    return counts
                time.sleep(0.5)
    finally:
        stop.set()
        if helper is not None:
            helper.join()


def _batches(
    files: list[tuple[Path, str]], failed: list[str], progress: Progress, task: object
) -> Iterator[list[DocumentInput]]:
    batch: list[DocumentInput] = []
    keys: set[str] = set()
    for path, name in files:
        try:
            parsed = parse_file(path.name, path.read_bytes())
        except (AppError, OSError) as exc:
            message = exc.message if isinstance(exc, AppError) else str(exc)
            failed.append(f"{path}: {message}")
            progress.advance(task)  # type: ignore[arg-type]
            continue
        for i, doc in enumerate(parsed):
            key = doc.external_id or (name if len(parsed) == 1 else f"{name}#{i + 1}")
            if key in keys:  # the same key twice: a batch may hold it once, and the later one wins
                yield batch
                batch, keys = [], set()
            batch.append(DocumentInput(doc.content, key, doc.title, doc.content_type, doc.metadata, name))
            keys.add(key)
            if len(batch) >= UPSERT_BATCH:
                yield batch
                batch, keys = [], set()
        progress.advance(task)  # type: ignore[arg-type]
    if batch:
        yield batch


def _exists(db: Session, name: str) -> bool:
    try:
        collections.get(db, name)
    except AppError:
        return False
    return True


def _worker_connected(engine: Engine) -> bool:
    with engine.connect() as conn:
        return repository.workers_connected(conn) > 0


def _queue_state(engine: Engine, collection_name: str) -> tuple[dict[str, int], int]:
    with Session(engine) as db:
        collection = collections.get(db, collection_name)
        counts = repository.status_counts(db, [collection.id])[collection.id]
        chunk_count = db.scalar(select(func.count()).where(Chunk.collection_id == collection.id)) or 0
    return counts, int(chunk_count)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
    )
