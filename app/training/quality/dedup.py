"""Duplicates in a dataset: exact ones (same text_hash) and near ones (embedding cosine >= a threshold, found
through the dataset's HNSW index), joined into clusters with union-find; with drop, all but one of each leave.

An example's text is memora.example_text, the same text that, normalised, gives its text_hash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import EmbeddingProviderError, InvalidInputError
from app.training.datasets import service as datasets
from app.training.quality import repository
from app.training.quality.index import (
    ProgressFn,
    chosen,
    embedder_for,
    ensure_embeddings,
    no_progress,
    refused,
)
from app.training.quality.neighbours import Mode, neighbours
from app.training.quality.schemas import Cluster, DedupReport, DedupRequest, Resolved, ResolveRequest


def dedup(
    db: Session, name: str, request: DedupRequest, settings: Settings, *, progress: ProgressFn = no_progress
) -> DedupReport:
    """Report exact and near duplicate clusters of dataset NAME; with request.drop, keep one of each."""
    dataset = datasets.get(db, name, keep=True)  # as the leakage report does (app/training/quality/leakage.py)
    embedder = embedder_for(request, settings) if request.near is not None else None
    conn = db.connection()
    clusters: list[Cluster] = []
    first: dict[int, int] = {}
    seq: dict[int, int] = {}
    if request.exact:
        for r in repository.EXACT_CLUSTERS.run(conn, {"d": dataset.id}):
            clusters.append(Cluster(kind="exact", keep=r.ids[0], members=r.ids, max_similarity=1, min_similarity=1))
            first |= dict.fromkeys(r.ids, r.ids[0])
            seq |= dict(zip(r.ids, r.seqs, strict=True))
    embedded = 0
    if request.near is not None and embedder is not None:
        try:
            embedded = ensure_embeddings(db, dataset, embedder, batch_size=settings.embed_batch_size, progress=progress)
        except EmbeddingProviderError as exc:
            raise refused(exc, request) from None
        mode: Mode = "distinct" if request.exact else "all"
        near = request.near
        found = neighbours(conn, dataset, embedder.dimensions, mode, near.k, near.threshold, progress=progress)
        # With exact clusters reported, a near cluster joins their first examples (the ones that stay).
        clusters += _near_clusters(found, first, seq)
    drop = [member for c in clusters for member in c.members if member != c.keep]
    tombstoned, deleted = repository.remove(conn, dataset.id, drop) if request.drop else (0, 0)
    counts = {
        "exact_clusters": sum(c.kind == "exact" for c in clusters),
        "near_clusters": sum(c.kind == "near" for c in clusters),
        "duplicates": len(drop),
        "embedded": embedded,
        "dropped": tombstoned + deleted,
        "tombstoned": tombstoned,
        "deleted": deleted,
    }
    choice = chosen(embedder) if embedder is not None else None
    return DedupReport(clusters=clusters[: request.limit], counts=counts, embedding=choice)


def resolve(db: Session, name: str, request: ResolveRequest) -> Resolved:
    """Settle one duplicate cluster of dataset NAME by hand: drop request.drop, keep request.keep, in this transaction.

    Every id must be a live example of the dataset, named once, and at least one must stay; otherwise a 422 names
    the field and the ids, and nothing changes. The examples are locked first, so a request settling the same cluster
    the other way meanwhile finds the ones this one dropped gone (its 422), and a cluster never leaves whole.
    """
    dataset = datasets.get(db, name, keep=True)
    problems = _resolve_problems(request)
    if not problems:
        wanted = sorted({*request.keep, *request.drop})
        live = set(repository.LOCK_LIVE.run(db.connection(), {"d": dataset.id, "ids": wanted}).scalars())
        for field, ids in (("body.keep", request.keep), ("body.drop", request.drop)):
            if absent := [i for i in ids if i not in live]:
                reason = f"not live examples of dataset {name!r}: {_listed(absent)}"
                problems.append({"field": field, "reason": reason, "ids": absent})
    if problems:
        raise InvalidInputError.for_problems(problems)
    tombstoned, deleted = repository.remove(db.connection(), dataset.id, request.drop)
    return Resolved(kept=request.keep, dropped=request.drop, tombstoned=tombstoned, deleted=deleted)


def _resolve_problems(request: ResolveRequest) -> list[dict[str, Any]]:
    """What is wrong with REQUEST on its face: nothing kept, an id named twice."""
    problems: list[dict[str, Any]] = []
    if not request.keep:
        problems.append({"field": "body.keep", "reason": "is empty: keep at least one example of the cluster"})
    for field, ids in (("body.keep", request.keep), ("body.drop", request.drop)):
        if repeated := sorted(i for i, n in Counter(ids).items() if n > 1):
            problems.append({"field": field, "reason": f"names {_listed(repeated)} more than once", "ids": repeated})
    if both := sorted(set(request.keep) & set(request.drop)):
        problems.append({"field": "body.drop", "reason": f"names {_listed(both)}, which keep names too", "ids": both})
    return problems


def _listed(ids: list[int], shown: int = 10) -> str:
    """IDS as "3, 5, 8" (the first SHOWN, then how many more)."""
    text = ", ".join(map(str, ids[:shown]))
    return text + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def _near_clusters(pairs: Iterable[Any], first: dict[int, int], seq: dict[int, int]) -> list[Cluster]:
    """Union-find over the pairs, each end mapped to the first example of its exact cluster (FIRST; SEQ has their
    seqs)."""
    parent: dict[int, int] = {}
    seq = dict(seq)

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges: list[tuple[int, int, float]] = []
    for p in pairs:
        a, b = first.get(p.a, p.a), first.get(p.b, p.b)
        if a == b:
            continue
        seq[p.a], seq[p.b] = p.a_seq, p.b_seq
        edges.append((a, b, float(p.similarity)))
        parent[root(a)] = root(b)
    members: dict[int, list[int]] = {}
    for x in parent:
        members.setdefault(root(x), []).append(x)
    similarities: dict[int, list[float]] = {}
    for a, _, similarity in edges:
        similarities.setdefault(root(a), []).append(similarity)
    clusters = []
    for r, ids in members.items():
        ids.sort(key=lambda x: seq.get(x, 0))
        s = similarities[r]
        clusters.append(Cluster(kind="near", keep=ids[0], members=ids, max_similarity=max(s), min_similarity=min(s)))
    clusters.sort(key=lambda c: seq.get(c.keep, 0))
    return clusters
