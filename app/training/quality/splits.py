"""Train/validation/test splits: store a dataset's split rule and reassign every live example by it.

An example's split is keyed by its text_hash (memora.text_hash), so exact duplicates always share a split and
cannot leak from train into test. Each key has a point u in [0, 1): 56 bits of SHA-256(seed || text_hash), the
same point memora.split_of places on the ratios. Unstratified, split = memora.split_of(text_hash, seed, ratios).
Stratified, the distinct keys of each label are ordered by u and cut at that label's quotas (quotas()), so every
label has its share in every split. Examples added later join the split memora.split_of gives them.
"""

from __future__ import annotations

import json
import math

from sqlalchemy import func
from sqlalchemy.orm import Session

from app.db.models import Dataset
from app.training.datasets import service as datasets
from app.training.datasets.schemas import SPLITS, SplitName, SplitRule
from app.training.quality import repository
from app.training.quality.schemas import LabelSplits, SplitReport

# Who gets an example first when a label has fewer keys than there are splits: training needs one most, then
# evaluation; validation last.
_MINIMUM_ORDER: tuple[SplitName, ...] = ("train", "test", "validation")


def quotas(keys: int, ratios: dict[str, float]) -> dict[SplitName, int]:
    """How many of a label's KEYS go to each split: largest-remainder rounding of keys x ratio, then every split
    with a positive ratio gets at least one key when there are enough, taken from the split that has the most."""
    shares = {s: keys * ratios.get(s, 0.0) for s in SPLITS}
    quota = {s: math.floor(shares[s]) for s in SPLITS}
    left = keys - sum(quota.values())
    by_remainder = sorted(SPLITS, key=lambda s: (-(shares[s] - quota[s]), SPLITS.index(s)))
    for s in by_remainder[: max(left, 0)]:
        quota[s] += 1
    positive = [s for s in SPLITS if ratios.get(s, 0.0) > 0]
    for s in _MINIMUM_ORDER:
        if s in positive and quota[s] == 0:
            donor = max(positive, key=lambda d: (quota[d], -SPLITS.index(d)))
            if quota[donor] > 1:
                quota[donor] -= 1
                quota[s] += 1
    return quota


def split(db: Session, name: str, rule: SplitRule) -> SplitReport:
    """Store RULE on dataset NAME and reassign every live example's split by it, in one UPDATE."""
    # Locking the dataset row waits for imports in flight (they bump next_seq) and holds new ones off until commit.
    dataset = datasets.get(db, name, lock=True)
    ratios: dict[str, float] = {s: float(rule.ratios.get(s, 0.0)) for s in SPLITS}
    dataset.split_seed, dataset.split_ratios, dataset.split_stratified = rule.seed, ratios, rule.stratified
    dataset.updated_at = func.now()
    db.flush()
    conn = db.connection()
    params = {"dataset": dataset.id, "seed": rule.seed, "ratios": json.dumps(ratios)}
    if rule.stratified:
        groups = repository.KEYS_PER_GROUP.run(conn, params).all()
        quota = [quotas(row.keys, ratios) for row in groups]
        params |= {
            "unlabeled": [row.unlabeled for row in groups],
            "groups": [row.g for row in groups],
            "train": [q["train"] for q in quota],
            "validation": [q["validation"] for q in quota],
        }
        changed = repository.SPLIT_STRATIFIED.run(conn, params).rowcount
    else:
        changed = repository.SPLIT_UNSTRATIFIED.run(conn, params).rowcount
    return report(db, dataset, changed=int(changed))


def report(db: Session, dataset: Dataset, *, changed: int = 0) -> SplitReport:
    """The dataset's split rule and its live examples per split (and per label, when stratified)."""
    params = {"dataset": dataset.id, "by_label": dataset.split_stratified}
    rows = repository.SPLIT_COUNTS.run(db, params).all()
    counts: dict[SplitName, int] = dict.fromkeys(SPLITS, 0)
    labels: dict[str | None, dict[SplitName, int]] = {}
    for row in rows:
        if row.split in counts:
            counts[row.split] += row.n
            labels.setdefault(row.label, dict.fromkeys(SPLITS, 0))[row.split] += row.n
    by_label = None
    if dataset.split_stratified:
        ordered = sorted(labels.items(), key=lambda item: (item[0] is None, item[0] or ""))
        by_label = [LabelSplits(label=label, **n) for label, n in ordered]
    # Not validated again: a rule stored from psql may give shares that add up to anything (split_of takes shares).
    rule = SplitRule.model_construct(
        ratios=dataset.split_ratios,  # type: ignore[arg-type]
        seed=dataset.split_seed,
        stratified=dataset.split_stratified,
    )
    return SplitReport(rule=rule, examples=sum(counts.values()), changed=changed, counts=counts, by_label=by_label)
