"""What the tests of the SQL search functions share: a Zipf-distributed corpus of made-up words, and running SQL
that names memora.<object> as psql users do in the schema of the test database."""

from __future__ import annotations

import json
import random
from typing import Any

import psycopg
from sqlalchemy import CursorResult
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.db.models import Collection
from app.db.query import Query
from tests.factories import make_chunk, make_collection, make_document

WORDS = [f"w{n}x" for n in range(400)]


def run(db: Session, statement: str, params: dict[str, Any] | None = None) -> CursorResult[Any]:
    """STATEMENT, naming memora.<object> as psql users do, run in the schema of the test database."""
    return Query(statement).run(db, params)


def zipf_text(rng: random.Random, words: int) -> str:
    # Word i with weight 1 / (i + 1): a few terms in most chunks, most terms in a few.
    return " ".join(rng.choices(WORDS, weights=[1 / (i + 1) for i in range(len(WORDS))], k=words))


def corpus(db: Session, chunks: int = 300, seed: int = 7) -> Collection:
    rng = random.Random(seed)
    collection = make_collection(db)
    for n in range(chunks // 3):
        document = make_document(db, collection, title="", metadata_={"bucket": n % 10})
        for ordinal in range(3):
            make_chunk(db, document, ordinal=ordinal, title="", text=zipf_text(rng, rng.randint(5, 60)))
    return collection


def as_json(value: Any) -> str:
    return json.dumps(value)


def sqlstate(error: DBAPIError) -> tuple[str | None, str | None]:
    orig = error.orig
    assert isinstance(orig, psycopg.Error)
    return orig.sqlstate, orig.diag.message_detail
