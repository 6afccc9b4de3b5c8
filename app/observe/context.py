"""The request id of the work in progress, in a context variable: set per request by the middleware, and by the
worker around each document it handles, to the id of the request that created or last changed the document.

Light on purpose: the worker and the ingestion service import it, and `memora --help` imports them.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

HEADER = "X-Request-ID"
# An incoming id is kept if it is short and plain (a UUID, a trace id, a load balancer's id); anything else would
# put the client's bytes into every log line, so it is replaced by one of ours.
MAX_LENGTH = 128
_SANE = re.compile(rf"[A-Za-z0-9._:\-]{{1,{MAX_LENGTH}}}")

_REQUEST_ID: ContextVar[str | None] = ContextVar("memora_request_id", default=None)

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


class HasRequestId(Protocol):
    @property
    def request_id(self) -> str | None: ...


def current_request_id() -> str | None:
    """The id of the request (or of the document's request, in the worker) being handled, if any."""
    return _REQUEST_ID.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(incoming: str | None) -> str:
    """INCOMING if it is a sane request id, else a new one."""
    if incoming is not None and _SANE.fullmatch(incoming):
        return incoming
    return new_request_id()


def enter_request(request_id: str) -> None:
    """From here on, in this context (one request's task), log lines carry REQUEST_ID."""
    _REQUEST_ID.set(request_id)


@contextmanager
def request_context(request_id: str | None) -> Iterator[None]:
    """Log lines inside the block carry REQUEST_ID (None: none)."""
    token = _REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        _REQUEST_ID.reset(token)


def for_document(
    method: Callable[Concatenate[S, Any, P], R],
) -> Callable[Concatenate[S, Any, P], R]:
    """Decorate a worker method whose first argument is a document: it runs in the request context of the request
    that created or last changed the document, so its log lines carry that request's id."""

    @functools.wraps(method)
    def wrapper(self: S, doc: HasRequestId, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with request_context(getattr(doc, "request_id", None)):
            return method(self, doc, *args, **kwargs)

    return wrapper
