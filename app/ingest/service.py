"""Documents in: upsert by external_id, list, look up, delete. The worker does the chunking and embedding."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sqlalchemy import Row, and_, delete, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.db.models import CONTENT_TYPES, DOCUMENT_STATUSES, Chunk, Collection, Document
from app.db.storable import unstorable
from app.errors import InvalidInputError, NotFoundError
from app.ingest import pipeline
from app.ingest.pipeline import ChunkInput
from app.ingest.repository import ClaimedDocument

MAX_EXTERNAL_ID = 1024


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
    rows = [
        {
            "collection_id": collection.id,
            "external_id": doc.external_id or default_external_id(doc.content),
            "title": doc.title or "",
            "content": doc.content,
            "content_type": doc.content_type,
            "metadata": doc.metadata,
            "source": doc.source,
        }
        for doc in inputs
    ]
    # Rows in key order: two requests upserting the same documents lock them in the same order, never deadlock.
    statement = insert(Document.__table__).values(sorted(rows, key=lambda row: str(row["external_id"])))  # type: ignore[arg-type]
    excluded = statement.excluded
    changed = func.row(
        Document.content_hash, Document.title, Document.content_type, Document.metadata_, Document.source
    ).op("IS DISTINCT FROM")(
        func.row(excluded.content_hash, excluded.title, excluded.content_type, excluded.metadata, excluded.source)
    )
    upsert_statement: Any = statement.on_conflict_do_update(
        index_elements=[Document.collection_id, Document.external_id],
        set_={
            "title": excluded.title,
            "content": excluded.content,
            "content_type": excluded.content_type,
            "metadata": excluded.metadata,
            "source": excluded.source,
        },
        where=changed,
    ).returning(Document.external_id, Document.status, Document.version, literal_column("xmax = 0"), Document.id)
    written = {row[0]: row for row in db.execute(upsert_statement)}
    untouched = [row["external_id"] for row in rows if row["external_id"] not in written]
    current = {
        row[0]: row
        for row in db.execute(
            select(Document.external_id, Document.status, Document.version).where(
                Document.collection_id == collection.id, Document.external_id.in_(untouched)
            )
        )
    }
    results = []
    given: list[pipeline.Item] = []
    for row, doc in zip(rows, inputs, strict=True):
        key = str(row["external_id"])
        if key in written:
            _, status, version, created, document_id = written[key]
            if doc.chunks is not None:
                given.append(_given_item(collection, document_id, version, doc))
                status = "ready"
            results.append(Upserted(key, status, version, "created" if created else "updated"))
        else:
            _, status, version = current[key]
            results.append(Upserted(key, status, version, "unchanged"))
    _write_given_chunks(db, collection, given)
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
        raise InvalidInputError(
            f"vector dimension mismatch: {problems[0]['field']} {problems[0]['reason']}", details=problems
        )


def _given_item(collection: Collection, document_id: int, version: int, doc: DocumentInput) -> pipeline.Item:
    """A document that brought its chunks and vectors, ready for the worker's write path."""
    claimed = ClaimedDocument(
        collection.id, document_id, version, 0, doc.title or "", doc.content, doc.content_type,
        collection.embedding_provider, collection.embedding_model, collection.dimensions, collection.chunking,
        collection.language,
    )  # fmt: skip
    planned, vectors = pipeline.plan_given(claimed, doc.chunks or [])
    return claimed, planned, vectors


def _write_given_chunks(db: Session, collection: Collection, items: list[pipeline.Item]) -> None:
    """Store the given chunks and vectors of ITEMS in one go (one COPY each), and mark their documents ready."""
    if not items:
        return
    pipeline.write_many(db.connection(), items)
    db.execute(
        update(Document)
        .where(Document.collection_id == collection.id, Document.id.in_([doc.id for doc, _, _ in items]))
        .values(status="ready", attempts=0, error=None, leased_by=None)
    )


def reject_constant(name: str) -> None:
    """json.loads hook: NaN and Infinity are not JSON, and PostgreSQL's jsonb refuses them."""
    raise ValueError(f"{name} is not valid JSON")


def encode_cursor(document_id: int) -> str:
    return base64.urlsafe_b64encode(str(document_id).encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        value = int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        value = -1
    if not 0 <= value < 2**63:
        raise InvalidInputError.for_field("cursor", "not a cursor this API returned")
    return value


def parse_metadata_filter(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw, parse_constant=reject_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise InvalidInputError.for_field("metadata", f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidInputError.for_field("metadata", "must be a JSON object")
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
    query = _summary().where(Document.collection_id == collection.id)
    if cursor is not None:
        query = query.where(Document.id > decode_cursor(cursor))
    if status is not None:
        query = query.where(Document.status == status)
    if metadata is not None:
        query = query.where(Document.metadata_.contains(metadata))
    rows = list(db.execute(query.order_by(Document.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].id) if more else None


def one(db: Session, collection: Collection, external_id: str) -> Row[Any]:
    row = db.execute(
        _summary(with_content=True).where(Document.collection_id == collection.id, Document.external_id == external_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no document {external_id!r} in collection {collection.name!r}")
    return row


def remove(db: Session, collection: Collection, external_id: str) -> None:
    result = db.execute(
        delete(Document).where(Document.collection_id == collection.id, Document.external_id == external_id)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFoundError(f"no document {external_id!r} in collection {collection.name!r}")


def _summary(with_content: bool = False) -> Any:
    chunk_count = (
        select(func.count())
        .where(and_(Chunk.collection_id == Document.collection_id, Chunk.document_id == Document.id))
        .scalar_subquery()
    )
    columns = [
        Document.id,
        Document.external_id,
        Document.title,
        Document.source,
        Document.content_type,
        Document.metadata_.label("metadata"),
        Document.status,
        Document.error,
        Document.attempts,
        Document.version,
        func.encode(Document.content_hash, "hex").label("content_hash"),
        chunk_count.label("chunk_count"),
        Document.created_at,
        Document.updated_at,
    ]
    if with_content:
        columns.append(Document.content)
    return select(*columns)
