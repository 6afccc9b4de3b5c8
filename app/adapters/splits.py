"""Two honest ways to hold judged queries out of an adapter's training.

- By query: a seeded fifth of the queries is held out. Their relevant documents may still appear in training, as the
  positives of other queries, so an adapter that only learned "these documents are often relevant" gains here.
- By document: queries are held out together with their relevant documents. A training query is kept only if none
  of its relevant documents is held out; the others are dropped (and counted). So the held-out queries ask about
  documents the adapter never saw: a gain here is a gain in matching queries to text, not a memory of documents.

Both orders come from SHA-256 of the seed and the query's id, so a split is the same on every machine and run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from app.eval.service import JudgedQuery

HELD_OUT = 0.2  # of the judged queries


@dataclass(frozen=True)
class Split:
    """Positions (into the judged queries) to train on and to hold out, and of queries neither may use."""

    name: str
    train: list[int]
    held_out: list[int]
    dropped: list[int]
    held_out_documents: frozenset[str] = frozenset()


def relevant(query: JudgedQuery) -> set[str]:
    return {document for document, grade in query.judgments.items() if grade > 0}


def _order(queries: Sequence[JudgedQuery], seed: int) -> list[int]:
    return sorted(range(len(queries)), key=lambda i: hashlib.sha256(f"{seed}:{queries[i].id}".encode()).digest())


def by_query(queries: Sequence[JudgedQuery], seed: int, fraction: float = HELD_OUT) -> Split:
    """A seeded FRACTION of the queries held out, the rest to train on."""
    order = _order(queries, seed)
    cut = round(len(queries) * fraction)
    return Split("query", sorted(order[cut:]), sorted(order[:cut]), [])


def by_document(queries: Sequence[JudgedQuery], seed: int, fraction: float = HELD_OUT) -> Split:
    """Queries held out in seeded order, each with its relevant documents, until FRACTION of the queries are; then
    the queries none of whose relevant documents is held out are the training set, and the rest are dropped."""
    order = _order(queries, seed)
    want = round(len(queries) * fraction)
    held: list[int] = []
    documents: set[str] = set()
    for i in order:
        if len(held) >= want:
            break
        held.append(i)
        documents |= relevant(queries[i])
    rest = [i for i in order if i not in set(held)]
    train = [i for i in rest if not relevant(queries[i]) & documents]
    dropped = [i for i in rest if relevant(queries[i]) & documents]
    return Split("document", sorted(train), sorted(held), sorted(dropped), frozenset(documents))
