"""The files and fine_tuning.jobs endpoints of an OpenAI-compatible service, with its errors said plainly."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai

from app import upstream
from app.config import Settings
from app.embeddings.openai_provider import retry_after_seconds
from app.errors import AppError, InvalidInputError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_DETAIL_CHARS = 300


class FinetuneServiceError(AppError):
    """The fine-tuning service failed or refused; the message says which call and why."""

    status = 502
    code = "finetune_service"


class Service:
    """The files and fine_tuning.jobs endpoints of one OpenAI-compatible base URL, errors as FinetuneServiceError."""

    def __init__(self, settings: Settings, base_url: str | None = None) -> None:
        self.base_url = (base_url or settings.openai_base_url or DEFAULT_BASE_URL).rstrip("/")
        self._key = key = upstream.api_key(settings, "fine-tuning", InvalidInputError)
        self.max_retries = settings.openai_max_retries
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
                time.sleep(min(wait, 60.0))

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
