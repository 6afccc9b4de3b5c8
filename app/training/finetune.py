"""Fine-tuning jobs on any OpenAI-compatible service: upload a snapshot's chat export, start a job, keep lineage.

The training file is the snapshot's train split as the openai-chat export writes it (app/training/export.py), the
validation split the validation file. Files are spooled to disk, so memory stays flat whatever the snapshot's size.
A job row is written only once the service has created the job: a failed upload or creation leaves no row, and the
files already uploaded are deleted again (docs/training-finetune.md).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
from pydantic import BaseModel
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app import upstream
from app.config import Settings
from app.db.models import FinetuneJob
from app.embeddings.openai_provider import retry_after_seconds
from app.errors import AppError, InvalidInputError, NotFoundError
from app.training.exports import service as export

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
_DETAIL_CHARS = 300


class FinetuneServiceError(AppError):
    """The fine-tuning service failed or refused; the message says which call and why."""

    status = 502
    code = "finetune_service"


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


class Service:
    """The files and fine_tuning.jobs endpoints of one OpenAI-compatible base URL, errors as FinetuneServiceError."""

    def __init__(self, settings: Settings, base_url: str | None = None, *, sleep: Callable[[float], None] = time.sleep):
        self.base_url = (base_url or settings.openai_base_url or DEFAULT_BASE_URL).rstrip("/")
        self._key = key = upstream.api_key(settings, "fine-tuning", InvalidInputError)
        self.max_retries = settings.openai_max_retries
        self._sleep = sleep
        # The client retries uploads and reads (408, 409, 429, 5xx, lost connections); job creation has its own loop.
        self.client = openai.OpenAI(
            api_key=key, base_url=self.base_url, timeout=settings.openai_timeout_seconds, max_retries=self.max_retries
        )

    def upload(self, path: Path, filename: str) -> str:
        """Upload a JSONL file for fine-tuning (streamed from disk); its file id."""
        with path.open("rb") as file:
            content = (filename, file, "application/jsonl")
            uploaded = self._call(f"upload of {filename}", self.client.files.create, file=content, purpose="fine-tune")
        return str(uploaded.id)

    def delete_file(self, file_id: str) -> None:
        """Delete an uploaded file, logging (not raising) when the service refuses."""
        try:
            self._call(f"deletion of file {file_id}", self.client.files.delete, file_id)
        except FinetuneServiceError as exc:
            log.warning("%s (the file stays on the service)", exc.message)

    def create_job(self, **params: Any) -> Any:
        """Create a job. Retried only on 429: after a 5xx or a timeout the job may exist, and a retry would make a
        second one (the API takes no idempotency key)."""
        client = self.client.with_options(max_retries=0)
        params = {key: value for key, value in params.items() if value is not None}
        attempt = 0
        while True:
            try:
                return self._call("job creation", client.fine_tuning.jobs.create, **params)
            except _RateLimited as limited:
                if attempt >= self.max_retries:
                    raise FinetuneServiceError(limited.message) from None
                wait = limited.wait if limited.wait is not None else 0.5 * 2**attempt * random.uniform(0.5, 1.0)
                attempt += 1
                log.warning("%s; retry %d of %d in %.2fs", limited.message, attempt, self.max_retries, wait)
                self._sleep(min(wait, 60.0))

    def retrieve(self, job_id: str) -> Any:
        return self._call(f"status of job {job_id}", self.client.fine_tuning.jobs.retrieve, job_id)

    def cancel(self, job_id: str) -> None:
        try:
            self._call(f"cancellation of job {job_id}", self.client.fine_tuning.jobs.cancel, job_id)
        except FinetuneServiceError as exc:
            log.warning("%s", exc.message)

    def _call(self, what: str, call: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        where = f"{what} at {self.base_url}"
        try:
            return call(*args, **kwargs)
        except openai.APIStatusError as exc:
            message = f"{where}: HTTP {exc.status_code}: {upstream.error_detail(exc, self._key, _DETAIL_CHARS)}"
            if exc.status_code == 429:
                raise _RateLimited(message, wait=retry_after_seconds(exc.response.headers)) from None
            raise FinetuneServiceError(message) from None
        except openai.APITimeoutError:
            raise FinetuneServiceError(f"{where}: no answer within {self.client.timeout}s") from None
        except openai.APIConnectionError as exc:
            raise FinetuneServiceError(
                f"{where}: connection failed ({self._scrub(str(exc.__cause__ or exc))})"
            ) from None

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***")


class _RateLimited(FinetuneServiceError):
    def __init__(self, message: str, *, wait: float | None) -> None:
        super().__init__(message)
        self.wait = wait


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
    options = export.Options(format="openai-chat", split=split, snapshot=snapshot)
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
        by_id = [FinetuneJob.id == int(ref)] if ref.isdigit() and len(ref) < 19 else []
        matches = list(db.scalars(query.where(or_(FinetuneJob.provider_job_id == ref, *by_id))))
        if not matches:
            raise NotFoundError(f"no fine-tuning job {ref!r}")
        found.extend(job for job in matches if job not in found)
    return found


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
