"""/v1/datasets/{name}/...: train/validation/test splits, exact and near duplicates (found, and settled one cluster
at a time), train/test leakage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import SessionDep, SettingsDep
from app.api.reads import ReadSessionDep
from app.auth.principal import Role
from app.auth.rules import needs
from app.collections.schemas import Provider
from app.training.datasets import service as datasets
from app.training.datasets.schemas import SplitRule
from app.training.quality import dedup, splits
from app.training.quality import leakage as leakages
from app.training.quality.schemas import (
    DedupReport,
    DedupRequest,
    EmbeddingChoice,
    LeakageReport,
    Resolved,
    ResolveRequest,
    SplitReport,
)

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
# Who may call these routes (app/auth/rules.py): the dataset is the path's {name}.
READS = [needs(Role.read, dataset="name")]
WRITES = [needs(Role.write, dataset="name")]


@router.post("/{name}/split", response_model=SplitReport, dependencies=WRITES)
def split_dataset(name: str, body: SplitRule, db: SessionDep) -> SplitReport:
    """Store the split rule and reassign every live example's split by it (examples added later join the split
    their text hash gives them). The same rule always gives the same split; exact duplicates share one."""
    return splits.split(db, name, body)


@router.get("/{name}/split", response_model=SplitReport, dependencies=READS)
def get_split(name: str, db: ReadSessionDep) -> SplitReport:
    """The dataset's split rule and its live examples per split (and per label when stratified)."""
    return splits.report(db, datasets.get(db, name))


@router.post("/{name}/dedup", response_model=DedupReport, dependencies=WRITES)
def dedup_dataset(name: str, body: DedupRequest, db: SessionDep, settings: SettingsDep) -> DedupReport:
    """Clusters of exact duplicates (same normalised text and labels) and, with `near`, of near duplicates
    (embedding cosine >= threshold, found through an HNSW index). With `drop`, all but the first example of each
    cluster leave the live dataset (snapshots that hold them still read them)."""
    return dedup.dedup(db, name, body, settings)


@router.post("/{name}/duplicates/resolve", response_model=Resolved, dependencies=WRITES)
def resolve_duplicates(name: str, body: ResolveRequest, db: SessionDep) -> Resolved:
    """Settle one duplicate cluster by hand: the examples in `drop` leave the live dataset (snapshots that hold them
    still read them), those in `keep` stay. Every id must be a live example of the dataset and at least one must be
    kept, else a 422 names the field and the ids and nothing changes."""
    return dedup.resolve(db, name, body)


@router.get("/{name}/leakage", response_model=LeakageReport, dependencies=READS)
def leakage(
    name: str,
    db: SessionDep,
    settings: SettingsDep,
    threshold: Annotated[float, Query(gt=0, le=1, allow_inf_nan=False, description="Least cosine similarity.")] = 0.95,
    k: Annotated[int, Query(ge=1, le=100, description="Train neighbours each evaluation example asks for.")] = 10,
    provider: Annotated[Provider, Query(description="Embedding provider.")] = "local",
    model: Annotated[str | None, Query(max_length=200, description="Default: the provider's.")] = None,
    dimensions: Annotated[int | None, Query(ge=1, le=2000, description="Default: the model's.")] = None,
    limit: Annotated[int, Query(ge=0, le=100_000, description="Most pairs listed; counts cover all.")] = 1000,
) -> LeakageReport:
    """Pairs of a train example and a validation or test example that are exact or near duplicates. Examples
    without an embedding are embedded first (and keep it, so the next report is quick)."""
    choice = EmbeddingChoice(provider=provider, model=model, dimensions=dimensions)
    return leakages.leakage(db, name, settings, threshold=threshold, k=k, choice=choice, limit=limit)
