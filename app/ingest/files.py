"""Files into documents, as `memora ingest` reads them: walk the directories given, parse each file, and upsert
the documents in batches (a file that cannot be read is skipped and named, the rest go on)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.collections import service as collections
from app.collections.schemas import CollectionCreate
from app.db.models import Collection
from app.db.repository import find_named
from app.errors import AppError, InvalidInputError
from app.ingest import service
from app.ingest.parsing import parse_file
from app.ingest.service import DocumentInput

SUFFIXES = {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl"}
UPSERT_BATCH = 200


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
            raise InvalidInputError.for_field(str(path), "no such file or directory")
    return found


def ingest(
    engine: Engine, files: list[tuple[Path, str]], collection_name: str, *, create: bool, tick: Callable[[], None]
) -> tuple[int, list[str]]:
    """Parse and upsert FILES (as find_files gives them), TICK once per file; how many documents were created or
    changed, and the files that could not be read, each with why."""
    with Session(engine) as db, db.begin():
        if create and find_named(db, Collection, collection_name) is None:
            collections.create(db, CollectionCreate(name=collection_name))
        collections.get(db, collection_name)
    changed, failed = 0, list[str]()
    for batch in batches(files, failed, tick):
        with Session(engine) as db, db.begin():
            results = service.upsert(db, collections.get(db, collection_name), batch)
        changed += sum(result.action != "unchanged" for result in results)
    return changed, failed


def batches(
    files: list[tuple[Path, str]], failed: list[str], tick: Callable[[], None]
) -> Iterator[list[DocumentInput]]:
    """The documents of FILES, UPSERT_BATCH at a time; a file that cannot be read goes to FAILED instead."""
    batch: list[DocumentInput] = []
    keys: set[str] = set()
    for path, name in files:
        try:
            parsed = parse_file(path.name, path.read_bytes())
        except (AppError, OSError) as exc:
            failed.append(f"{path}: {exc.message if isinstance(exc, AppError) else exc}")
            tick()
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
        tick()
    if batch:
        yield batch
