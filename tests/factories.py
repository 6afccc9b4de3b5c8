"""Plain functions that make rows for tests; each takes overrides for any column."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

from sqlalchemy.orm import Session

from app.db.models import Chunk, Collection, Dataset, Document, Embedding, Example

_seq = itertools.count(1)


def make_collection(db: Session, **overrides: Any) -> Collection:
    values: dict[str, Any] = {"name": f"collection-{next(_seq)}", "embedding_model": "test-model", "dimensions": 3}
    collection = Collection(**(values | overrides))
    db.add(collection)
    db.flush()
    db.refresh(collection)
    return collection


def make_document(db: Session, collection: Collection, **overrides: Any) -> Document:
    n = next(_seq)
    values: dict[str, Any] = {"external_id": f"doc-{n}", "title": f"Document {n}", "content": f"Content {n}."}
    document = Document(collection_id=collection.id, **(values | overrides))
    db.add(document)
    db.flush()
    db.refresh(document)
    return document


def make_chunk(db: Session, document: Document, **overrides: Any) -> Chunk:
    text = overrides.pop("text", document.content)
    values: dict[str, Any] = {
        "ordinal": 0,
        "char_start": 0,
        "char_end": len(text),
        "content_hash": hashlib.sha256(text.encode()).digest(),
        "title": document.title,
        "language": "english",
    }
    chunk = Chunk(collection_id=document.collection_id, document_id=document.id, text=text, **(values | overrides))
    db.add(chunk)
    db.flush()
    db.refresh(chunk)
    return chunk


def make_embedding(
    db: Session, chunk: Chunk, vector: list[float], model: str = "test-model", version: int = 1
) -> Embedding:
    embedding = Embedding(
        collection_id=chunk.collection_id, chunk_id=chunk.id, version=version, model=model, embedding=vector
    )
    db.add(embedding)
    db.flush()
    return embedding


def make_dataset(db: Session, **overrides: Any) -> Dataset:
    values: dict[str, Any] = {"name": f"dataset-{next(_seq)}", "task": "classification"}
    dataset = Dataset(**(values | overrides))
    db.add(dataset)
    db.flush()
    db.refresh(dataset)
    return dataset


def make_example(db: Session, dataset: Dataset, **overrides: Any) -> Example:
    n = next(_seq)
    values: dict[str, Any] = {
        "format": "classification",
        "input": {"text": f"example {n}"},
        "label": "ham",
    }
    example = Example(dataset_id=dataset.id, **(values | overrides))
    db.add(example)
    db.flush()
    db.refresh(example)
    return example
