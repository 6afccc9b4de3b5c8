"""Search feedback: a person (or a click log) says a result was relevant to a query, or was not.

Feedback is training data. It goes to the dataset the collection names (feedback_dataset), through the same importer
as any other example, so it is validated, deduplicated, split, snapshotted and exported like the rest:

- relevant: a `pairs` example {query, positive: the chunk's text (the document's, if no chunk is named)}, with
  metadata.relevant = {external_id: 1}, which `memora eval --dataset` and adapter training read as a judged query;
- not relevant: a `custom` example {query, negative, label: not_relevant}, with metadata.relevant = {external_id: 0}:
  not a pair, so no export or evaluation takes it for a positive; adapter training reads it as a hard negative.

Both carry the collection, document and chunk as their source, and metadata.feedback = {relevant, version}.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.collections import service as collections
from app.db.models import Chunk, Document, EmbeddingVersion
from app.errors import ConflictError, InvalidInputError
from app.training.datasets import service as datasets
from app.training.imports.importer import Importer

NOT_RELEVANT = "not_relevant"


class Feedback(BaseModel):
    """Whether one search result was relevant to the query that found it."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=10_000, description="The query as the search was sent.")
    chunk_id: int | None = Field(default=None, ge=1, le=2**63 - 1, description="The result's chunk_id.")
    external_id: str | None = Field(
        default=None, min_length=1, max_length=1024, description="The result's document (when no chunk is named)."
    )
    relevant: bool = Field(description="true: the result answers the query; false: it does not.")
    version: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="The embedding_version the search reported."
    )

    @model_validator(mode="after")
    def _one_result(self) -> Feedback:
        if self.chunk_id is None and self.external_id is None:
            raise ValueError("name the result: chunk_id, or external_id for a whole document")
        if not self.query.strip():
            raise ValueError("query must not be blank")
        return self


class FeedbackStored(BaseModel):
    dataset: str = Field(description="Where it is kept: the collection's feedback_dataset.")
    stored: bool = Field(description="false when the same feedback was given before: it is kept once.")


def record(db: Session, name: str, feedback: Feedback) -> FeedbackStored:
    """Store FEEDBACK on collection NAME's search in its feedback dataset (409 if it names none)."""
    collection = collections.get(db, name)
    if collection.feedback_dataset is None:
        raise ConflictError(
            f"collection {name!r} keeps no feedback: set its feedback_dataset (PATCH /v1/collections/{name})"
        )
    if feedback.version is not None and db.get(EmbeddingVersion, (collection.id, feedback.version)) is None:
        raise InvalidInputError.for_field("version", f"collection {name!r} has no embedding version {feedback.version}")
    external_id, text = _result(db, collection.id, name, feedback)
    source: dict[str, Any] = {"collection": name, "external_id": external_id}
    if feedback.chunk_id is not None:
        source["chunk_id"] = feedback.chunk_id
    metadata = {
        "relevant": {external_id: 1 if feedback.relevant else 0},
        "feedback": {"relevant": feedback.relevant, "version": feedback.version},
    }
    if feedback.relevant:
        record_: dict[str, Any] = {"query": feedback.query, "positive": text}
        format_ = "pairs"
    else:
        record_ = {"query": feedback.query, "negative": text, "label": NOT_RELEVANT}
        format_ = "custom"
    dataset = datasets.get(db, collection.feedback_dataset.name, keep=True)
    job = Importer(db, dataset, mode="strict", format=format_)
    job.add([(None, "", {**record_, "source": source, "metadata": metadata})])
    report = job.finish()  # strict: a record the dataset refuses is a 422 with the importer's report
    return FeedbackStored(dataset=dataset.name, stored=report.stored == 1)


def _result(db: Session, collection_id: int, name: str, feedback: Feedback) -> tuple[str, str]:
    """The external id of the result's document and the result's text; a 422 naming the field if it is not there."""
    if feedback.chunk_id is not None:
        row = db.execute(
            select(Document.external_id, Chunk.text)
            .join(Document, (Document.collection_id == Chunk.collection_id) & (Document.id == Chunk.document_id))
            .where(Chunk.collection_id == collection_id, Chunk.id == feedback.chunk_id)
        ).first()
        if row is None:
            raise InvalidInputError.for_field("chunk_id", f"collection {name!r} has no chunk {feedback.chunk_id}")
        if feedback.external_id is not None and feedback.external_id != row[0]:
            raise InvalidInputError.for_field("external_id", f"chunk {feedback.chunk_id} is of document {row[0]!r}")
        return row[0], row[1]
    of_collection = Document.collection_id == collection_id
    content = db.scalar(select(Document.content).where(of_collection, Document.external_id == feedback.external_id))
    if content is None:
        raise InvalidInputError.for_field(
            "external_id", f"collection {name!r} has no document {feedback.external_id!r}"
        )
    return str(feedback.external_id), content
