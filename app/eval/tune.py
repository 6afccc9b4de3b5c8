"""`memora eval --tune`: choose hybrid search's fusion settings on a dev split of the judged queries, and check the
choice against the defaults on the queries held back.

The split is a function of each query's id and the seed (SHA-256), so the same queries and seed give the same split
on every run and machine. Settings are compared at k 10 chunks (what an application showing 10 results asks for),
by nDCG@10 of their documents; the defaults come first in the grid and only a strictly better setting replaces them,
so a tie keeps the defaults.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection

from app.embeddings.base import Vectors
from app.errors import InvalidInputError
from app.eval.repository import FusionParams
from app.eval.service import JudgedQuery, evaluate_mode

TUNE_K = 10
RRF_KS = (10, 30, 60, 100)
WEIGHTS = ((1.0, 1.0), (1.0, 2.0), (2.0, 1.0))  # text : vector
CANDIDATE_FACTORS = (4, 2, 8)  # candidates per side, times k (4 is search_hybrid_v1's default)


@dataclass(frozen=True)
class Setting:
    """Hybrid search's fusion settings; candidates as a multiple of k, so they carry over to any k."""

    fusion: str = "convex"
    rrf_k: int = 60
    text_weight: float = 1.0
    vector_weight: float = 1.0
    candidates_factor: int = 4

    def params(self, k: int) -> FusionParams:
        """The FusionParams of this setting for a search of K."""
        return FusionParams(self.fusion, self.rrf_k, self.text_weight, self.vector_weight, self.candidates_factor * k)

    def as_json(self) -> dict[str, Any]:
        """Named as SearchRequest names them (fusion, rrf_k, weights), candidates as a multiple of k."""
        return {
            "fusion": self.fusion,
            "rrf_k": self.rrf_k,
            "weights": {"text": self.text_weight, "vector": self.vector_weight},
            "candidates_factor": self.candidates_factor,
        }


DEFAULT = Setting()


def grid() -> list[Setting]:
    """The settings tried, the defaults first: convex over weights and candidates, rrf also over rrf_k."""
    settings = [DEFAULT]
    for factor in CANDIDATE_FACTORS:
        for text, vector in WEIGHTS:
            settings.append(Setting("convex", 60, text, vector, factor))
            settings += [Setting("rrf", rrf_k, text, vector, factor) for rrf_k in RRF_KS]
    return list(dict.fromkeys(settings))


def split_queries(queries: Sequence[JudgedQuery], dev_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Positions of the dev and holdout queries: ordered by SHA-256 of seed and id, the first round(n * DEV_FRACTION)
    (at least one, and one left) are dev."""
    if not 0 < dev_fraction < 1:
        raise InvalidInputError.for_field("dev_fraction", "must be between 0 and 1 (exclusive)")
    if len(queries) < 2:
        raise InvalidInputError(
            f"tuning needs at least 2 judged queries (one to tune on, one to check), got {len(queries)}"
        )
    order = sorted(range(len(queries)), key=lambda i: hashlib.sha256(f"{seed}:{queries[i].id}".encode()).digest())
    cut = min(max(round(len(queries) * dev_fraction), 1), len(queries) - 1)
    return sorted(order[:cut]), sorted(order[cut:])


@dataclass
class TuneResult:
    """The defaults and the best setting on dev, and both on the held-back queries."""

    best: Setting
    dev: dict[str, dict[str, float | int]]  # "default" / "best" -> summary
    holdout: dict[str, dict[str, float | int]]
    dev_queries: int
    holdout_queries: int
    tried: int
    seed: int
    dev_fraction: float
    k: int

    def summary(self) -> dict[str, Any]:
        """What `memora eval --tune --json` prints under "tune", and what --save keeps with the setting."""
        return {
            "default": DEFAULT.as_json(),
            "best": self.best.as_json(),
            "dev": self.dev,
            "holdout": self.holdout,
            "dev_queries": self.dev_queries,
            "holdout_queries": self.holdout_queries,
            "tried": self.tried,
            "seed": self.seed,
            "dev_fraction": self.dev_fraction,
            "k": self.k,
        }


def tune(
    conn: Connection,
    collection: str,
    queries: Sequence[JudgedQuery],
    embeddings: Vectors,
    embed_ms: Sequence[float],
    *,
    dev_fraction: float = 0.5,
    seed: int = 0,
    k: int = TUNE_K,
    settings: Sequence[Setting] | None = None,
    advance: Callable[[], None] | None = None,
) -> TuneResult:
    """Evaluate each setting (default: grid()) on the dev queries, keep the best by nDCG@10, and evaluate it and
    the defaults on the holdout queries."""
    dev_at, holdout_at = split_queries(queries, dev_fraction, seed)
    settings = list(settings or grid())
    if DEFAULT not in settings:
        settings.insert(0, DEFAULT)

    def run(setting: Setting, at: list[int], step: Callable[[], None] | None) -> dict[str, float | int]:
        result = evaluate_mode(
            conn, "hybrid", collection, [queries[i] for i in at], np.asarray(embeddings)[at],
            [embed_ms[i] for i in at], depth=k, params=setting.params(k), documents=0, advance=step,
        )  # fmt: skip
        conn.rollback()
        return result.summary()

    scored = [(setting, run(setting, dev_at, advance)) for setting in settings]
    default_dev = next(summary for setting, summary in scored if setting == DEFAULT)
    best, best_dev = DEFAULT, default_dev
    for setting, summary in scored:
        if summary["ndcg@10"] > best_dev["ndcg@10"]:
            best, best_dev = setting, summary
    default_holdout = run(DEFAULT, holdout_at, None)
    best_holdout = default_holdout if best == DEFAULT else run(best, holdout_at, None)
    return TuneResult(
        best=best,
        dev={"default": default_dev, "best": best_dev},
        holdout={"default": default_holdout, "best": best_holdout},
        dev_queries=len(dev_at),
        holdout_queries=len(holdout_at),
        tried=len(settings),
        seed=seed,
        dev_fraction=dev_fraction,
        k=k,
    )


def search_defaults(result: TuneResult) -> dict[str, Any]:
    """What --save stores as collection.metadata["search_defaults"]: the setting, and how it was chosen."""
    return {
        **result.best.as_json(),
        "tuned": {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "k": result.k,
            "seed": result.seed,
            "dev_fraction": result.dev_fraction,
            "dev_queries": result.dev_queries,
            "holdout_queries": result.holdout_queries,
            "holdout_ndcg@10": result.holdout["best"]["ndcg@10"],
            "default_holdout_ndcg@10": result.holdout["default"]["ndcg@10"],
        },
    }
