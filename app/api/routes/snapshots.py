"""/v1/datasets/{name}/snapshots and /v1/datasets/{name}/batches: frozen versions, and batches for training."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.api.deps import ExampleId, SessionDep
from app.api.reads import ReadSessionDep
from app.api.timeouts import statement_kind
from app.auth.principal import Role
from app.auth.rules import needs
from app.training.batches import service as batches
from app.training.batches.schemas import Batch
from app.training.batches.service import MAX_BATCH, MAX_SEED
from app.training.datasets import service
from app.training.datasets.schemas import ExampleOut, ExamplePage, SplitName
from app.training.snapshots import service as snapshots
from app.training.snapshots.schemas import Change, SnapshotCreate, SnapshotDiff, SnapshotOut

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
# Who may call these routes (app/auth/rules.py): the dataset is the path's {name}.
READS = [needs(Role.read, dataset="name")]
WRITES = [needs(Role.write, dataset="name")]


@router.post(
    "/{name}/snapshots",
    status_code=status.HTTP_201_CREATED,
    response_model=SnapshotOut,
    dependencies=WRITES,
)
def create_snapshot(name: str, body: SnapshotCreate, db: SessionDep) -> SnapshotOut:
    """Freeze the live examples (ids, content hashes, splits) as a named, immutable version."""
    return SnapshotOut.model_validate(snapshots.create(db, service.get(db, name, keep=True), body))


@router.get("/{name}/snapshots", response_model=list[SnapshotOut], dependencies=READS)
def list_snapshots(name: str, db: ReadSessionDep) -> list[SnapshotOut]:
    return [SnapshotOut.model_validate(s) for s in snapshots.all_of(db, service.get(db, name))]


@router.get("/{name}/snapshots/{snapshot}", response_model=SnapshotOut, dependencies=READS)
def get_snapshot(name: str, snapshot: str, db: ReadSessionDep) -> SnapshotOut:
    return SnapshotOut.model_validate(snapshots.get(db, service.get(db, name), snapshot))


@router.delete(
    "/{name}/snapshots/{snapshot}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=WRITES,
)
def delete_snapshot(name: str, snapshot: str, db: SessionDep) -> Response:
    """Delete a snapshot; examples deleted from the live dataset that only it held are purged."""
    snapshots.delete(db, service.get(db, name, keep=True), snapshot)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/snapshots/{snapshot}/examples", response_model=ExamplePage, dependencies=READS)
def list_snapshot_examples(
    name: str,
    snapshot: str,
    db: ReadSessionDep,
    split: SplitName | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> ExamplePage:
    """The snapshot's examples in order, a page at a time, as they were when it was made (split included)."""
    frozen = snapshots.get(db, service.get(db, name), snapshot)
    items, next_cursor = snapshots.page(db, frozen, limit=limit, cursor=cursor, split=split)
    return ExamplePage(items=items, next_cursor=next_cursor)


@router.get(
    "/{name}/snapshots/{snapshot}/examples/{example_id}",
    response_model=ExampleOut,
    dependencies=READS,
)
def get_snapshot_example(name: str, snapshot: str, example_id: ExampleId, db: ReadSessionDep) -> ExampleOut:
    dataset = service.get(db, name)
    return snapshots.one(db, dataset, snapshots.get(db, dataset, snapshot), example_id)


@router.get("/{name}/snapshots/{snapshot}/diff", response_model=SnapshotDiff, dependencies=READS)
def diff_snapshots(
    name: str,
    snapshot: str,
    db: SessionDep,
    against: Annotated[
        str, Query(min_length=1, max_length=200, description="The snapshot to compare with: the one before.")
    ],
    change: Annotated[Change | None, Query(description="Only changes of this kind; counts cover all.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=100, description="next_cursor of the previous page")] = None,
) -> SnapshotDiff:
    """What changed from snapshot `against` to this one: examples added, removed, or moved to another split,
    counted, and listed a page at a time in example id order (keyset pagination)."""
    dataset = service.get(db, name, keep=True)
    # KEEP: a snapshot deleted meanwhile waits for this request, rather than vanish between its statements.
    after = snapshots.get(db, dataset, snapshot, keep=True)
    before = snapshots.get(db, dataset, against, keep=True)
    return snapshots.diff(db, dataset, after, before, change=change, limit=limit, cursor=cursor)


@router.post("/{name}/snapshots/{snapshot}/examples", include_in_schema=False, dependencies=WRITES)
@router.post("/{name}/snapshots/{snapshot}/import", include_in_schema=False, dependencies=WRITES)
@router.patch("/{name}/snapshots/{snapshot}", include_in_schema=False, dependencies=WRITES)
@router.put("/{name}/snapshots/{snapshot}", include_in_schema=False, dependencies=WRITES)
def write_snapshot(name: str, snapshot: str, db: SessionDep) -> None:
    """Snapshots are immutable: 409."""
    snapshots.refuse_write(db, name, snapshot)


@router.delete(
    "/{name}/snapshots/{snapshot}/examples/{example_id}",
    include_in_schema=False,
    dependencies=WRITES,
)
@router.patch(
    "/{name}/snapshots/{snapshot}/examples/{example_id}",
    include_in_schema=False,
    dependencies=WRITES,
)
@router.put(
    "/{name}/snapshots/{snapshot}/examples/{example_id}",
    include_in_schema=False,
    dependencies=WRITES,
)
def write_snapshot_example(name: str, snapshot: str, example_id: str, db: SessionDep) -> None:
    """Snapshots are immutable: 409."""
    snapshots.refuse_write(db, name, snapshot)


@router.get("/{name}/batches", response_model=Batch, dependencies=[*READS, statement_kind("export")])
def get_batch(
    name: str,
    db: ReadSessionDep,
    size: Annotated[int, Query(ge=1, le=MAX_BATCH, description=f"Examples per batch, at most {MAX_BATCH}")] = 100,
    cursor: Annotated[str | None, Query(max_length=1000, description="next_cursor of the previous batch")] = None,
    split: SplitName | None = None,
    snapshot: Annotated[str | None, Query(max_length=200, description="Read this snapshot, not the live set")] = None,
    shuffle_seed: Annotated[
        int | None, Query(ge=0, le=MAX_SEED, description="Shuffle with this seed (one per epoch); unset: seq order")
    ] = None,
    fields: Annotated[
        list[str] | None,
        Query(description=f"Comma-separated, of: {', '.join(batches.FIELDS)}. Default: id, split, record"),
    ] = None,
) -> Batch:
    """The next batch of an epoch and the cursor of the one after it (keyset pagination; shuffles computed in the
    database). Pass the same split, snapshot and shuffle_seed with every cursor of an epoch."""
    wanted = batches.parse_fields(fields)
    dataset = service.get(db, name)
    frozen = None if snapshot is None else snapshots.get(db, dataset, snapshot)
    return batches.batch(
        db,
        dataset,
        size=size,
        cursor=cursor,
        split=split,
        snapshot=frozen,
        seed=shuffle_seed,
        fields=wanted,
    )
