"""/v1/finetune/jobs: the recorded fine-tuning jobs and their lineage, read-only (`memora finetune` starts them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.api.deps import SessionDep
from app.auth.principal import Role, current
from app.auth.rules import needs
from app.errors import ConflictError
from app.training.finetune import repository
from app.training.finetune.schemas import FinetuneJobOut

router = APIRouter(prefix="/v1/finetune", tags=["fine-tuning"])


@router.get("/jobs", response_model=list[FinetuneJobOut], dependencies=[needs(Role.read)])
def list_jobs(
    db: SessionDep,
    request: Request,
    dataset: Annotated[str | None, Query(max_length=128, description="Only this dataset's jobs")] = None,
) -> list[FinetuneJobOut]:
    """Every recorded job of the datasets the key is granted, oldest first, as last polled (no call to the
    fine-tuning service)."""
    principal = current(request)
    jobs = repository.find_jobs(db, dataset=dataset)
    return [FinetuneJobOut.of(job) for job in jobs if principal.sees_dataset(job.dataset_name)]


@router.get("/jobs/{job}", response_model=FinetuneJobOut, dependencies=[needs(Role.read)])
def get_job(job: str, db: SessionDep, request: Request) -> FinetuneJobOut:
    """One job by Memora's id or by the service's job id (ftjob-...); a job of a dataset the key is not granted is
    the 404 of one that does not exist."""
    principal = current(request)
    found = [one for one in repository.find_jobs(db, [job]) if principal.sees_dataset(one.dataset_name)]
    if not found:
        raise repository.no_job(job)
    if len(found) > 1:
        raise ConflictError(f"{job!r} names {len(found)} jobs (of different services): ask by Memora's id")
    return FinetuneJobOut.of(found[0])
