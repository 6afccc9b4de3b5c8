"""The queries of fine-tuning jobs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.db.models import FinetuneJob
from app.errors import NotFoundError

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def find_jobs(
    db: Session, refs: Sequence[str] = (), *, pending: bool = False, dataset: str | None = None
) -> list[FinetuneJob]:
    """Jobs by memora id or provider job id (each must exist), else all (or the non-terminal ones), oldest first."""
    query = select(FinetuneJob).order_by(FinetuneJob.id)
    if dataset is not None:
        query = query.where(FinetuneJob.dataset_name == dataset)
    if pending:
        query = query.where(FinetuneJob.status.not_in(TERMINAL))
    if not refs:
        return list(db.scalars(query))
    found: list[FinetuneJob] = []
    for ref in refs:
        # ASCII digits only: str.isdigit() is true for '²' too, which int() refuses.
        by_id = [FinetuneJob.id == int(ref)] if ref.isascii() and ref.isdigit() and len(ref) < 19 else []
        matches = list(db.scalars(query.where(or_(FinetuneJob.provider_job_id == ref, *by_id))))
        if not matches:
            raise no_job(ref)
        found.extend(job for job in matches if job not in found)
    return found


def no_job(ref: str) -> NotFoundError:
    """The 404 of a job REF names that is not there (or is of a dataset the API key is not granted)."""
    return NotFoundError(f"no fine-tuning job {ref!r}")
