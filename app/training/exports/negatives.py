"""Pairs and triplets for sentence-transformers, with hard negatives mined from a collection by hybrid search.

A hard negative is a chunk that the collection's hybrid search ranks high for the anchor but that is not the
positive. Search results that are the positive in another spelling would teach the model that the right answer is
wrong, so a result is skipped when it is a near-copy of the positive: the same words (case, punctuation and white space
ignored), the words of one inside those of the other, or a cosine similarity to the positive of at least
NEAR_COPY_COSINE under the collection's model. Results that repeat the anchor, a negative the example already has,
or a negative chosen before are skipped too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Collection
from app.embeddings.registry import get_embedder
from app.errors import AppError, EmbeddingProviderError
from app.training.exports import repository

# Formats an anchor and a positive can be read from: pairs and triplets, and qa (the question and its context).
PAIR_FORMATS = ("pairs", "triplets", "qa")
NEAR_COPY_COSINE = 0.95
MAX_NEGATIVES = 100
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Pair:
    """What an example gives a sentence-transformers dataset: an anchor, its positive, its own negatives."""

    anchor: str
    positive: str
    negatives: tuple[str, ...]


def pair_of(row: Mapping[str, Any]) -> Pair:
    """The anchor, positive and given negatives of a pairs, triplets or qa example."""
    data = row["input"]
    if row["format"] == "qa":
        return Pair(str(data["question"]), str(data["context"]), ())
    anchor = data.get("anchor", data.get("query"))
    negative = data.get("negative")
    if negative is None:
        negatives: tuple[str, ...] = ()
    elif isinstance(negative, str):
        negatives = (negative,)
    else:
        negatives = tuple(str(n) for n in negative)
    return Pair(str(anchor), str(data["positive"]), negatives)


def normalise(text: str) -> str:
    """The words of TEXT in lower case, one space apart: case, punctuation and white space do not count."""
    return " ".join(_WORD.findall(text.lower()))


def near_copy(candidate: str, positive: str) -> bool:
    """True when two normalised texts are equal or one holds the other (as whole words)."""
    if not candidate or not positive:
        return candidate == positive
    return f" {candidate} " in f" {positive} " or f" {positive} " in f" {candidate} "


class Miner:
    """Mines up to PER_EXAMPLE hard negatives per pair from COLLECTION, a batch of pairs at a time."""

    def __init__(self, db: Session, settings: Settings, collection: Collection, per_example: int) -> None:
        self.db, self.collection, self.per_example = db, collection, per_example
        self.embedder = get_embedder(
            collection.embedding_provider, collection.embedding_model, collection.dimensions, settings
        )
        # Room for the results that get skipped; search_hybrid_v1 returns at most 1,000.
        self.k = min(1000, 3 * per_example + 10)

    def mine(self, pairs: Sequence[Pair]) -> list[list[str]]:
        """The mined negatives of each pair, best first."""
        if not pairs:
            return []
        vectors = self._embed([p.anchor for p in pairs] + [p.positive for p in pairs])
        anchors, positives = vectors[: len(pairs)], vectors[len(pairs) :]
        params = {
            "queries": [p.anchor for p in pairs],
            "embeddings": [_literal(v) for v in anchors],
            "positives": [_literal(v) for v in positives],
            "collection": self.collection.name,
            "collection_id": self.collection.id,
            "version": self.collection.active_version,
            "k": self.k,
        }
        hits: list[list[tuple[str, float | None]]] = [[] for _ in pairs]
        for row in repository.NEGATIVE_CANDIDATES.run(self.db, params):
            hits[row.i - 1].append((row.text, row.positive_cosine))
        return [self._choose(pair, found) for pair, found in zip(pairs, hits, strict=True)]

    def _choose(self, pair: Pair, hits: list[tuple[str, float | None]]) -> list[str]:
        positive, anchor = normalise(pair.positive), normalise(pair.anchor)
        seen = {normalise(n) for n in pair.negatives} | {anchor}
        chosen: list[str] = []
        for text, cosine in hits:
            candidate = normalise(text)
            if candidate in seen or near_copy(candidate, positive):
                continue
            if cosine is not None and cosine >= NEAR_COPY_COSINE:
                continue
            seen.add(candidate)
            chosen.append(text)
            if len(chosen) == self.per_example:
                break
        return chosen

    def _embed(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        try:
            return np.asarray(self.embedder.embed(texts), dtype=np.float32)
        except AppError:
            raise
        except Exception as exc:
            model = f"{self.collection.embedding_model} ({self.collection.embedding_provider})"
            raise EmbeddingProviderError(f"embedding model {model} could not embed the anchors: {exc}") from exc


def _literal(vector: np.ndarray[Any, np.dtype[np.float32]]) -> str:
    """pgvector's text form, so a list of vectors travels as one text[] cast to vector[]."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def lines(
    rows: Iterable[Mapping[str, Any]],
    miner: Miner | None,
    batch_size: int,
    *,
    triplets: bool,
    tick: Callable[[int], None],
) -> Iterator[bytes]:
    """sentence-transformers JSONL: pairs {"anchor", "positive"} per example; triplets {"anchor", "positive",
    "negative"} per negative of each example (its own first, then the mined ones), none for an example without."""
    batch: list[Pair] = []
    for row in rows:
        batch.append(pair_of(row))
        if len(batch) == batch_size:
            yield from _lines(batch, miner, triplets)
            tick(len(batch))
            batch = []
    yield from _lines(batch, miner, triplets)
    tick(len(batch))


def _lines(batch: list[Pair], miner: Miner | None, triplets: bool) -> Iterator[bytes]:
    mined = miner.mine(batch) if miner is not None else [[] for _ in batch]
    for pair, found in zip(batch, mined, strict=True):
        if not triplets:
            yield _json({"anchor": pair.anchor, "positive": pair.positive})
            continue
        for negative in (*pair.negatives, *found):
            yield _json({"anchor": pair.anchor, "positive": pair.positive, "negative": negative})


def _json(line: dict[str, str]) -> bytes:
    return json.dumps(line, ensure_ascii=False).encode() + b"\n"
