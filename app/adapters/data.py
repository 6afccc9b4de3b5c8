"""What adapter training reads from the database: judged queries made into vectors of a base version.

For each judged query: its vector (the base model's), the vector of each relevant document (the document's chunk
nearest to the query in the base version, since judgments name documents), and hard negatives: the chunks the base
version's hybrid search ranks highest for the query that belong to no relevant document, and the chunks of documents
judged not relevant (grade 0, as feedback marks them). Every vector is read once, by one query per kind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection

from app.adapters.train import TrainingData
from app.db.query import Query
from app.errors import InvalidInputError
from app.eval.service import JudgedQuery

MIN_PAIRS = 50  # judged (query, relevant document) pairs
MINED = 20  # chunks of the base hybrid search looked at per query for hard negatives
MAX_LISTED = 20  # unknown documents named in a refusal

_DOCUMENT_VECTORS = Query("""
SELECT d.external_id, e.chunk_id, e.embedding
FROM memora.document d
JOIN memora.chunk ch ON ch.collection_id = d.collection_id AND ch.document_id = d.id
JOIN memora.embedding e ON e.collection_id = ch.collection_id AND e.chunk_id = ch.id AND e.version = %(version)s
WHERE d.collection_id = %(c)s AND d.external_id = ANY(%(ids)s)
ORDER BY d.external_id, e.chunk_id
""")
_KNOWN = Query("SELECT external_id FROM memora.document WHERE collection_id = %(c)s AND external_id = ANY(%(ids)s)")
_NEAREST = Query("""
SELECT chunk_id, external_id FROM memora.search_hybrid_v2(%(collection)s, %(query)s, %(embedding)s, %(k)s,
                                                         version => %(version)s)
""")
_CHUNK_VECTORS = Query("""
SELECT e.chunk_id, e.embedding FROM memora.embedding e
WHERE e.collection_id = %(c)s AND e.version = %(version)s AND e.chunk_id = ANY(%(ids)s)
""")


@dataclass
class Judged:
    """The training data of judged queries, with each vector's document (to keep held-out documents out)."""

    data: TrainingData
    documents: list[str]  # per vector: the external id of its document

    def without(self, held_out: frozenset[str]) -> TrainingData:
        """The data with no hard negative from a HELD_OUT document."""
        negatives = [[v for v in mined if self.documents[v] not in held_out] for mined in self.data.negatives]
        return TrainingData(self.data.queries, self.data.vectors, self.data.positives, negatives)


def check(queries: Sequence[JudgedQuery]) -> None:
    """Refuse too few pairs before any work (422 naming the field pairs)."""
    pairs = sum(1 for q in queries for grade in q.judgments.values() if grade > 0)
    if pairs < MIN_PAIRS:
        raise InvalidInputError.for_field(
            "pairs", f"has {pairs} judged (query, relevant document) pairs; training needs at least {MIN_PAIRS}"
        )


def judged(
    conn: Connection,
    collection_id: int,
    collection: str,
    version: int,
    queries: Sequence[JudgedQuery],
    vectors: np.ndarray,
    advance: Callable[[], None] | None = None,
) -> Judged:
    """The training data of QUERIES (whose base vectors are VECTORS) in VERSION of the collection."""
    check(queries)
    named = check_known(conn, collection_id, queries)
    chunks: dict[str, list[tuple[int, np.ndarray]]] = {}
    for row in _DOCUMENT_VECTORS.run(conn, {"c": collection_id, "version": version, "ids": named}):
        external_id, chunk_id, embedding = tuple(row)
        chunks.setdefault(external_id, []).append((chunk_id, np.asarray(embedding.to_list(), dtype=np.float32)))
    index: dict[int, int] = {}
    rows: list[np.ndarray] = []
    documents: list[str] = []

    def vector_index(chunk_id: int, vector: np.ndarray, document: str) -> int:
        if chunk_id not in index:
            index[chunk_id] = len(rows)
            rows.append(vector)
            documents.append(document)
        return index[chunk_id]

    def nearest_chunk(document: str, query: np.ndarray) -> int | None:
        found = chunks.get(document)
        if not found:
            return None  # a document with no vector in the version (not embedded yet)
        chunk_id, vector = max(found, key=lambda item: float(item[1] @ query))
        return vector_index(chunk_id, vector, document)

    positives: list[list[int]] = []
    negatives: list[list[int]] = []
    mined: list[list[tuple[int, str]]] = []
    for q, vector in zip(queries, vectors, strict=True):
        relevant = {d for d, grade in q.judgments.items() if grade > 0}
        positives.append([i for d in sorted(relevant) if (i := nearest_chunk(d, vector)) is not None])
        negatives.append([i for d, g in sorted(q.judgments.items()) if g <= 0 and (i := nearest_chunk(d, vector))
                          is not None])  # fmt: skip
        params = {"collection": collection, "query": q.text, "embedding": vector, "k": MINED, "version": version}
        mined.append([(c, d) for c, d in map(tuple, _NEAREST.run(conn, params)) if d not in relevant])
        if advance is not None:
            advance()
    wanted = sorted({c for found in mined for c, _ in found} - index.keys())
    rows_of = _CHUNK_VECTORS.run(conn, {"c": collection_id, "version": version, "ids": wanted})
    fetched = {c: np.asarray(e.to_list(), dtype=np.float32) for c, e in map(tuple, rows_of)}
    for found, listed in zip(mined, negatives, strict=True):
        listed += [index[c] if c in index else vector_index(c, fetched[c], d) for c, d in found
                   if c in index or c in fetched]  # fmt: skip
    data = TrainingData(vectors.astype(np.float32), np.stack(rows), positives, negatives)
    return Judged(data, documents)


def check_known(conn: Connection, collection_id: int, queries: Sequence[JudgedQuery]) -> list[str]:
    """The documents QUERIES judge, all of them in the collection; else a 422 naming pairs, listing the others."""
    named = sorted({document for q in queries for document in q.judgments})
    known = set(_KNOWN.run(conn, {"c": collection_id, "ids": named}).scalars())
    unknown = [d for d in named if d not in known]
    if unknown:
        listed = ", ".join(repr(d) for d in unknown[:MAX_LISTED])
        asked = next(q.id for q in queries if unknown[0] in q.judgments)
        raise InvalidInputError.for_field(
            "pairs",
            f"{len(unknown)} judged document(s) are not in the collection: {listed}"
            f"{' ...' if len(unknown) > MAX_LISTED else ''} (the first judged by query {asked!r})",
        )
    return named
