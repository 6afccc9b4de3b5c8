"""Fine-tuning jobs on any OpenAI-compatible service: upload a snapshot's chat export, start a job, keep lineage.

The training file is the snapshot's train split as the openai-chat export writes it (app/training/exports/), the
validation split the validation file. Files are spooled to disk, so memory stays flat whatever the snapshot's size.
A job row is written only once the service has created the job: a failed upload or creation leaves no row, and the
files already uploaded are deleted again (docs/training-finetune.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import FinetuneJob
from app.errors import AppError, InvalidInputError
from app.training.exports import service as export
from app.training.exports.schemas import Options
from app.training.finetune.client import FinetuneServiceError, Service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Spooled:
    """One split of a snapshot written as the openai-chat export."""

    path: Path
    filename: str
    examples: int
    skipped: int  # qa examples without an answer: they have no assistant message
    dataset_id: int
    snapshot_id: int | None


def spool(db: Session, settings: Settings, dataset: str, snapshot: str, split: str, directory: Path) -> Spooled:
    """Write SPLIT of the snapshot to DIRECTORY as `memora export --format openai-chat` writes it, byte for byte."""
    options = Options(format="openai-chat", split=split, snapshot=snapshot)
    try:
        prepared = export.prepare(db, dataset, options)
    except InvalidInputError as exc:
        reason = exc.problems[0]["reason"] if exc.problems else exc.message
        raise InvalidInputError(
            f"snapshot {snapshot!r} of dataset {dataset!r} cannot be fine-tuned on: {reason}",
            details=[{"field": "snapshot", "reason": reason}],
        ) from None
    path = directory / prepared.filename
    with path.open("wb") as file:
        for block in prepared.chunks(db, settings):
            file.write(block)
    return Spooled(
        path, prepared.filename, prepared.total, prepared.skipped, prepared.dataset.id, prepared.source.snapshot_id
    )


def start(
    db: Session,
    settings: Settings,
    service: Service,
    directory: Path,
    *,
    dataset_name: str,
    snapshot_name: str,
    model: str,
    suffix: str | None = None,
    epochs: int | None = None,
    validation: bool = True,
) -> FinetuneJob:
    """Upload a snapshot's train (and validation) split, create the job and commit its row.

    DB must not be inside a transaction: the reads and the write are two short ones, with the uploads between."""
    with db.begin():
        train = spool(db, settings, dataset_name, snapshot_name, "train", directory)
        if train.examples == 0:
            left_out = f" ({train.skipped} qa examples without an answer left out)" if train.skipped else ""
            raise InvalidInputError(
                f"snapshot {snapshot_name!r} of dataset {dataset_name!r} has no train examples to fine-tune on"
                + left_out,
                details=[{"field": "snapshot", "reason": "no train examples"}],
            )
        held_out = spool(db, settings, dataset_name, snapshot_name, "validation", directory) if validation else None
    uploaded: list[str] = []
    try:
        uploaded.append(service.upload(train.path, train.filename))
        if held_out is not None and held_out.examples:
            uploaded.append(service.upload(held_out.path, held_out.filename))
        method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": epochs}}} if epochs else None
        created = service.create_job(
            model=model, training_file=uploaded[0], validation_file=uploaded[1] if len(uploaded) > 1 else None,
            suffix=suffix, method=method,
        )  # fmt: skip
    except FinetuneServiceError:
        for file_id in uploaded:
            service.delete_file(file_id)
        raise
    job = FinetuneJob(
        dataset_id=train.dataset_id, snapshot_id=train.snapshot_id, dataset_name=dataset_name,
        snapshot_name=snapshot_name, base_url=service.base_url, model=model, suffix=suffix,
        training_file_id=uploaded[0], validation_file_id=uploaded[1] if len(uploaded) > 1 else None,
        provider_job_id=str(created.id), status=str(created.status),
    )  # fmt: skip
    apply(job, created)
    try:
        with db.begin():
            db.add(job)
            db.flush()
            db.refresh(job)
    except Exception:
        service.cancel(job.provider_job_id)
        where = f"{job.provider_job_id} at {service.base_url}"
        log.error("job %s was created but could not be recorded, so it was cancelled", where)
        raise
    return job


def apply(job: FinetuneJob, remote: Any) -> bool:
    """Copy the service's view of a job (status, fine-tuned model, tokens, error) onto its row; True if it changed."""
    error = getattr(remote, "error", None)
    message = getattr(error, "message", None) if error is not None else None
    if error is not None and message:
        code = getattr(error, "code", None)
        message = f"{code}: {message}" if code else message
    values = {
        "status": str(remote.status),
        "fine_tuned_model": getattr(remote, "fine_tuned_model", None),
        "trained_tokens": getattr(remote, "trained_tokens", None),
        "error": message or None,
    }
    changed = {key: value for key, value in values.items() if getattr(job, key) != value}
    for key, value in changed.items():
        setattr(job, key, value)
    if changed and job.id is not None:
        job.updated_at = datetime.now(UTC)
    return bool(changed)


def poll(db: Session, jobs: Sequence[FinetuneJob], services: Callable[[str], Service]) -> list[tuple[FinetuneJob, str]]:
    """Ask each job's service for its state and commit what changed, job by job (no transaction stays open while
    the service is asked); the jobs that could not be asked, with why. SERVICES gives a base URL's Service."""
    db.commit()
    problems = []
    for job in jobs:
        try:
            remote = services(job.base_url).retrieve(job.provider_job_id)
        except AppError as exc:
            problems.append((job, exc.message))
            continue
        before = job.status
        db.add(job)
        if apply(job, remote):
            db.commit()
        if job.status != before:
            log.info("job %s: %s -> %s", job.provider_job_id, before, job.status)
    return problems
