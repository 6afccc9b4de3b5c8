"""Documents in: upsert by external_id, list, look up, delete. The worker does the chunking and embedding."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sqlalchemy import Row
from sqlalchemy.orm import Session

from app import cursors
from app.db.models import CONTENT_TYPES, DOCUMENT_STATUSES, Collection
from app.db.storable import unstorable
from app.errors import InvalidInputError, NotFoundError
from app.ingest import chunk_repository, pipeline, repository
from app.ingest.pipeline import ChunkInput, GivenDocument
from app.limits import MAX_EXTERNAL_ID, MAX_KEY_BYTES, MAX_SOURCE_CHARS, MAX_TITLE_CHARS
from app.observe.context import current_request_id


@dataclass(frozen=True)
class DocumentInput:
    content: str
    external_id: str | None = None
    title: str | None = None
    content_type: str = "text/plain"
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    chunks: list[ChunkInput] | None = None


@dataclass(frozen=True)
class Upserted:
    external_id: str
    status: str
    version: int
    action: Literal["created", "updated", "unchanged"]


def default_external_id(content: str) -> str:
    """The key of a document sent without one: its content hash, so sending it again changes nothing."""
    return "sha256:" + hashlib.sha256(content.encode()).hexdigest()


def validate(inputs: list[DocumentInput], field_prefix: str = "documents") -> list[DocumentInput]:
    """Check every document before any is written; errors name the document and field."""
    problems = []
    seen: dict[str, int] = {}
    for i, doc in enumerate(inputs):
        where = f"{field_prefix}[{i}]"
        if not doc.content.strip():
            problems.append({"field": f"{where}.content", "reason": "is empty or only whitespace"})
        if doc.content_type not in CONTENT_TYPES:
            problems.append({"field": f"{where}.content_type", "reason": f"must be one of {', '.join(CONTENT_TYPES)}"})
        key = doc.external_id or default_external_id(doc.content)
        if doc.external_id is not None and not doc.external_id.strip():
            problems.append({"field": f"{where}.external_id", "reason": "is empty"})
        if key in seen:
            problems.append(
                {"field": f"{where}.external_id", "reason": f"repeats document {seen[key]} of this request"}
            )
        seen[key] = i
        if len(key) > MAX_EXTERNAL_ID:
            problems.append({"field": f"{where}.external_id", "reason": f"is longer than {MAX_EXTERNAL_ID} characters"})
        elif len(key.encode(errors="replace")) > MAX_KEY_BYTES:
            problems.append(
                {"field": f"{where}.external_id", "reason": f"is longer than {MAX_KEY_BYTES} bytes of UTF-8"}
            )
        for name, most in (("title", MAX_TITLE_CHARS), ("source", MAX_SOURCE_CHARS)):
            if len(getattr(doc, name) or "") > most:
                problems.append({"field": f"{where}.{name}", "reason": f"is longer than {most} characters"})
        for name in ("content", "title", "external_id", "source", "metadata"):
            if reason := unstorable(getattr(doc, name)):
                problems.append({"field": f"{where}.{name}", "reason": reason})
        problems += _chunk_problems(doc, where)
    if problems:
        raise InvalidInputError.for_problems(problems, "invalid documents")
    return inputs


def upsert(db: Session, collection: Collection, inputs: list[DocumentInput]) -> list[Upserted]:
    """Insert new documents, update changed ones (the database queues them), leave identical ones alone.

    Documents that bring their chunks and vectors are written at once, in this transaction, and come back ready.
    """
    validate(inputs)
    _check_dimensions(collection, inputs)
    request_id = current_request_id()
    rows = [
        {
            "collection_id": collection.id,
            "external_id": doc.external_id or default_external_id(doc.content),
            "title": doc.title or "",
            "content": doc.content,
            "content_type": doc.content_type,
            "metadata": doc.metadata,
            "source": doc.source,
            "request_id": request_id,
        }
        for doc in inputs
    ]
    written = repository.upsert_documents(db, rows)
    current = repository.document_states(
        db, collection.id, [str(row["external_id"]) for row in rows if row["external_id"] not in written]
    )
    results = []
    given: list[GivenDocument] = []
    for row, doc in zip(rows, inputs, strict=True):
        key = str(row["external_id"])
        if key in written:
            _, status, version, created, document_id = written[key]
            if doc.chunks is not None:
                given.append(
                    GivenDocument(collection.id, document_id, doc.title or "", doc.content, collection.language,
                                  collection.embedding_model, doc.chunks, collection.active_version)
                )  # fmt: skip
                status = "ready"
            results.append(Upserted(key, status, version, "created" if created else "updated"))
        else:
            _, status, version = current[key]
            results.append(Upserted(key, status, version, "unchanged"))
    _write_given(db, collection, given)
    return results


def _chunk_problems(doc: DocumentInput, where: str) -> list[dict[str, str]]:
    """Given chunks must be empty-free, in order, and found in the content, each vector finite."""
    problems = []
    position = 0
    for j, chunk in enumerate(doc.chunks or []):
        start = doc.content.find(chunk.text, position) if chunk.text.strip() else -1
        if start < 0:
            missing = "is empty" if not chunk.text.strip() else "is not in the content (after the previous chunk)"
            problems.append({"field": f"{where}.chunks[{j}].text", "reason": missing})
        else:
            position = start + len(chunk.text)
        with np.errstate(over="ignore"):
            finite = bool(np.isfinite(np.asarray(chunk.embedding, dtype=np.float32)).all())
        if not finite:
            problems.append(
                {
                    "field": f"{where}.chunks[{j}].embedding",
                    "reason": "holds NaN, infinity or a value too large for float32",
                }
            )
        if unfit := unstorable([chunk.text, chunk.metadata]):
            problems.append({"field": f"{where}.chunks[{j}]", "reason": unfit})
    return problems


def _check_dimensions(collection: Collection, inputs: list[DocumentInput]) -> None:
    problems = [
        {
            "field": f"documents[{i}].chunks[{j}].embedding",
            "reason": f"has {len(chunk.embedding)} dimensions; collection {collection.name!r} "
            f"holds {collection.dimensions}",
        }
        for i, doc in enumerate(inputs)
        for j, chunk in enumerate(doc.chunks or [])
        if len(chunk.embedding) != collection.dimensions
    ]
    if problems:
        raise InvalidInputError.for_problems(problems, "vector dimension mismatch")


def _write_given(db: Session, collection: Collection, docs: list[GivenDocument]) -> None:
    """Store the chunks and vectors DOCS brought, all in one go (one COPY each), and mark them ready."""
    if docs:
        pipeline.write_many(db.connection(), [(doc, *pipeline.plan_given(doc)) for doc in docs])
        repository.mark_ready(db, collection.id, [doc.id for doc in docs])


def reject_constant(name: str) -> None:
    """json.loads hook: NaN and Infinity are not JSON, and PostgreSQL's jsonb refuses them."""
    raise ValueError(f"{name} is not valid JSON")


def parse_metadata_filter(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw, parse_constant=reject_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise InvalidInputError.for_field("metadata", f"not JSON ({exc})") from None
    except RecursionError:
        raise InvalidInputError.for_field("metadata", "JSON nested too deeply to parse") from None
    if not isinstance(value, dict):
        raise InvalidInputError.for_field("metadata", "must be a JSON object")
    if reason := unstorable(value):
        raise InvalidInputError.for_field("metadata", reason)
    return value


def page(
    db: Session,
    collection: Collection,
    *,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> tuple[list[Row[Any]], str | None]:
    """One page of documents in id order (keyset pagination) and the cursor of the next page."""
    if status is not None and status not in DOCUMENT_STATUSES:
        raise InvalidInputError.for_field("status", f"must be one of {', '.join(DOCUMENT_STATUSES)}")
    after = cursors.decode(cursor) if cursor is not None else None
    rows = repository.document_page(db, collection.id, limit + 1, after=after, status=status, metadata=metadata)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, cursors.encode(rows[-1].id) if more else None


def retry(db: Session, collection: Collection, external_ids: list[str] | None) -> tuple[list[str], list[str]]:
    """Queue failed documents again: (those queued, those named that had not failed); 404 for a name the collection
    does not have, before anything changes."""
    if external_ids is not None:
        known = repository.document_states(db, collection.id, external_ids)
        unknown = [external_id for external_id in external_ids if external_id not in known]
        if unknown:
            raise _no_document(collection, unknown[0])
    retried = repository.retry_failed(db, collection.id, external_ids)
    named = sorted(set(external_ids or ()) - set(retried))
    return retried, named


def one(db: Session, collection: Collection, external_id: str) -> Row[Any]:
    """Document EXTERNAL_ID of COLLECTION with its content, or a 404."""
    row = repository.find_document(db, collection.id, external_id)
    if row is None:
        raise _no_document(collection, external_id)
    return row


def chunks(
    db: Session, collection: Collection, external_id: str, *, limit: int, cursor: str | None, text_chars: int | None
) -> tuple[str, list[Row[Any]], str | None]:
    """Document EXTERNAL_ID's status (or a 404), one page of its chunks in ordinal order (keyset pagination), and
    the cursor of the next page."""
    document = repository.document_key(db, collection.id, external_id)
    if document is None:
        raise _no_document(collection, external_id)
    document_id, status = document
    after = cursors.decode(cursor) if cursor is not None else -1
    rows = chunk_repository.chunk_page(db, collection, document_id, after=after, limit=limit + 1, text_chars=text_chars)
    more = len(rows) > limit
    rows = rows[:limit]
    return status, rows, cursors.encode(rows[-1].ordinal) if more else None


def remove(db: Session, collection: Collection, external_id: str) -> None:
    """Delete document EXTERNAL_ID of COLLECTION, or a 404."""
    if not repository.delete_document(db, collection.id, external_id):
        raise _no_document(collection, external_id)


def _no_document(collection: Collection, external_id: str) -> NotFoundError:
    return NotFoundError(f"no document {external_id!r} in collection {collection.name!r}")
