"""What `memora ingest` and `memora worker` do, with progress bars for people at a terminal."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.collections import service as collections
from app.collections.schemas import CollectionCreate
from app.config import Settings
from app.errors import AppError, InvalidInputError
from app.ingest import service
from app.ingest.parsing import parse_file
from app.ingest.progress import follow
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
    """Follow the collection's ingestion until its queue is empty, with a bar of documents finished and one of
    chunks embedded, which moves with each embedding call; start a worker here if none is connected."""
    counts: dict[str, int] = {}
    with _progress() as progress:
        documents = progress.add_task("documents", total=None)
        chunks = progress.add_task("chunks embedded", total=None)
        for snapshot in follow(settings, engine, collection_name):
            counts = snapshot.documents
            progress.update(documents, completed=snapshot.finished, total=sum(counts.values()))
            progress.update(chunks, completed=snapshot.embedded, total=snapshot.texts)
    return counts


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


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
    )
