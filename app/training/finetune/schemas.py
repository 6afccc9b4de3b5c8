"""Response bodies of fine-tuning jobs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from app.db.models import FinetuneJob


class FinetuneJobOut(BaseModel):
    """One fine-tuning job with its lineage: which snapshot of which dataset trained which model."""

    id: int
    dataset: str
    snapshot: str
    base_url: str
    model: str
    suffix: str | None
    training_file_id: str
    validation_file_id: str | None
    provider_job_id: str
    status: str
    fine_tuned_model: str | None
    trained_tokens: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: FinetuneJob) -> FinetuneJobOut:
        return cls(
            id=job.id, dataset=job.dataset_name, snapshot=job.snapshot_name, base_url=job.base_url, model=job.model,
            suffix=job.suffix, training_file_id=job.training_file_id, validation_file_id=job.validation_file_id,
            provider_job_id=job.provider_job_id, status=job.status, fine_tuned_model=job.fine_tuned_model,
            trained_tokens=job.trained_tokens, error=job.error, created_at=job.created_at, updated_at=job.updated_at,
        )  # fmt: skip
