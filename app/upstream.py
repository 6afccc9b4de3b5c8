"""What every caller of an OpenAI-compatible server shares (chat, reranking, fine-tuning): the API key, a client,
error messages with the server's own words and the key masked, and the retry loop.

Calls are retried on 408, 409, 429, 5xx and lost connections, honouring Retry-After, as the embedding provider
retries; a timeout is not retried (a model that did not answer within the timeout rarely answers the second time,
and the caller is waiting): it becomes UpstreamTimeoutError (504), every other failure the caller's own error.

The openai package is imported when a client is made (it takes half a second): importing this module is cheap.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

from app.config import Settings
from app.embeddings.openai_provider import retry_after_seconds
from app.errors import AppError, UpstreamError, UpstreamTimeoutError

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429})
DETAIL_CHARS = 500
MAX_WAIT_SECONDS = 30.0
_T = TypeVar("_T")


def api_key(settings: Settings, needed_by: str, error: type[AppError]) -> str:
    """MEMORA_OPENAI_API_KEY, else OPENAI_API_KEY; ERROR naming NEEDED_BY when there is neither."""
    secret = settings.openai_api_key
    key = (secret.get_secret_value() if secret else None) or os.environ.get("OPENAI_API_KEY")
    if not key:
        raise error(
            f"{needed_by} needs an API key: set MEMORA_OPENAI_API_KEY or OPENAI_API_KEY (any value for a server "
            "that does not check keys)"
        )
    return key


def error_detail(exc: openai.APIError, key: str, limit: int = DETAIL_CHARS) -> str:
    """The server's message of EXC (error.message in OpenAI's shape), the key masked, at most LIMIT characters."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict) and "message" in body:
        body = body["message"]
    return str(body if body is not None else exc.message).replace(key, "***")[:limit]


def without_userinfo(url: str) -> str:
    """URL without user:password@, which would otherwise reach error messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url.rstrip("/")
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit(parts._replace(netloc=netloc)).rstrip("/")


class Upstream:
    """One OpenAI-compatible server: its client (without the client's own retries: call() retries, and logs each
    retry) and failures as ERROR, a subclass's AppError. Use it in a with block, or close() it."""

    error: type[UpstreamError] = UpstreamError
    needed_by = "the server"

    def __init__(self, settings: Settings) -> None:
        self._key = api_key(settings, self.needed_by, self.error)
        self.timeout = settings.openai_timeout_seconds
        self.max_retries = settings.openai_max_retries
        import openai

        self._client = openai.OpenAI(
            api_key=self._key, base_url=settings.openai_base_url, timeout=self.timeout, max_retries=0
        )
        self.server = without_userinfo(str(self._client.base_url))

    def __enter__(self: _U) -> _U:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def scrub(self, text: str) -> str:
        """TEXT with the API key masked."""
        return text.replace(self._key, "***")

    def detail(self, exc: openai.APIError) -> str:
        return error_detail(exc, self._key)

    def timed_out(self, where: str) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(f"{where}: no answer within {self.timeout:g}s")

    def call(self, where: str, call: Callable[[], _T]) -> _T:
        """CALL's result, retried as the module says; WHERE names the model and server in errors and logs."""
        import openai

        attempt = 0
        while True:
            wait = answered = None
            try:
                return call()
            except openai.APITimeoutError:
                raise self.timed_out(where) from None
            except openai.APIStatusError as exc:
                reason, answered = f"HTTP {exc.status_code}: {self.detail(exc)}", exc.status_code
                retry = exc.status_code in RETRY_STATUSES or exc.status_code >= 500
                wait = retry_after_seconds(exc.response.headers)
            except openai.APIConnectionError as exc:
                reason, retry = f"connection failed ({self.scrub(str(exc.__cause__ or exc))})", True
            except (openai.OpenAIError, ValueError) as exc:
                reason, retry = self.scrub(f"{type(exc).__name__}: {exc}"), False
            if not retry or attempt >= self.max_retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise self.error(f"{where}{tries}: {reason}", answered=answered) from None
            if wait is None:
                wait = 0.5 * 2**attempt * random.uniform(0.5, 1.0)
            wait = min(wait, MAX_WAIT_SECONDS)
            attempt += 1
            log.warning("%s: %s; retry %d of %d in %.2fs", where, reason, attempt, self.max_retries, wait)
            time.sleep(wait)


_U = TypeVar("_U", bound=Upstream)
