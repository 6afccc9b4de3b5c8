"""Recording the trail: after a write's answer has gone out, one event in a short transaction of its own.

Why here, as ASGI middleware around the routes: the status is only known once the response starts, and requests
the access check refused (401, 403, 404) or a route failed belong in the trail too, though their own transaction was
rolled back. The insert runs in a worker thread after the last byte of the response was sent, so the client never
waits for it, and a failure to record is logged, never the client's error. Old events are deleted past
MEMORA_AUDIT_RETENTION_DAYS, at most once an hour per process (by the next write after the hour).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import anyio
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.audit import repository
from app.auth.access import IDENTITY
from app.auth.principal import Principal
from app.auth.rules import rule_of
from app.config import Settings
from app.observe.context import current_request_id

log = logging.getLogger("app.audit")

PURGE_EVERY_SECONDS = 3600.0
# Methods that change nothing: an admin-only GET (the trail itself, the key list) is not a write.
_READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SessionFactory = Callable[[], AbstractContextManager[Any]]
# Where a route that names its resource in the body (a create) tells the trail which one (names() below).
_COLLECTION = "audit_collection"
_DATASET = "audit_dataset"


def names(request: Request, *, collection: str | None = None, dataset: str | None = None) -> None:
    """Tell the trail which collection or dataset REQUEST works on, when no path parameter says it."""
    if collection is not None:
        setattr(request.state, _COLLECTION, collection)
    if dataset is not None:
        setattr(request.state, _DATASET, dataset)


class AuditTrail:
    """Writes events through SESSIONS (the app's session factory; the tests' `api` fixture swaps in its rolled-back
    session), purging old ones hourly by CLOCK (monotonic seconds)."""

    def __init__(self, settings: Settings, sessions: SessionFactory, clock: Callable[[], float] = time.monotonic):
        self.retention = timedelta(days=settings.audit_retention_days)
        self.sessions = sessions
        self.clock = clock
        self._purged_at: float | None = None
        self._lock = threading.Lock()

    def record(self, event: dict[str, Any]) -> None:
        """Store EVENT (the columns of memora.audit_event), then purge if the hour is up; log any failure."""
        try:
            with self.sessions() as db:
                repository.record(db, **event)
                db.commit()
        except Exception:
            log.exception("could not record the audit event of %s %s", event["method"], event["path"])
        if self._purge_due():
            try:
                with self.sessions() as db:
                    gone = repository.purge(db, self.retention)
                    db.commit()
                if gone:
                    log.info("audit trail: %d events older than %s deleted", gone, self.retention)
            except Exception:
                log.exception("could not delete old audit events")

    def _purge_due(self) -> bool:
        with self._lock:
            now = self.clock()
            if self._purged_at is not None and now - self._purged_at < PURGE_EVERY_SECONDS:
                return False
            self._purged_at = now
            return True


def event_of(scope: Scope, status: int) -> dict[str, Any] | None:
    """The audit event of a request the router matched, when its route writes; None otherwise."""
    route = scope.get("route")
    if not isinstance(route, APIRoute) or scope["method"] in _READING_METHODS:
        return None
    rule = rule_of(route)
    if rule is None or not rule.writes:
        return None
    state = scope.get("state", {})
    # The principal the route's rule let in; else the one Identify found before the rule refused it (a 403).
    principal: Principal | None = state.get("principal") or state.get(IDENTITY)
    params = scope.get("path_params", {})
    return {
        "key_id": principal.key_id if principal else None,
        "key_name": principal.name if principal else None,
        "method": scope["method"],
        "route": route.path_format,
        "path": _storable(scope["path"]),
        "collection": _storable(params.get(rule.collection) if rule.collection else state.get(_COLLECTION)),
        "dataset": _storable(params.get(rule.dataset) if rule.dataset else state.get(_DATASET)),
        "status": status,
        "request_id": current_request_id(),
    }


def _storable(value: Any) -> str | None:
    """VALUE as text PostgreSQL takes: a path may hold a NUL or a lone surrogate (a 422 for the route, still an
    event for the trail)."""
    if value is None:
        return None
    return str(value).replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


class AuditMiddleware:
    """Pure ASGI middleware: record the request in app.state.audit once its response is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _READING_METHODS:
            await self.app(scope, receive, send)
            return
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            event = event_of(scope, status)
            trail: AuditTrail | None = getattr(scope["app"].state, "audit", None)
            if event is not None and trail is not None:
                with anyio.CancelScope(shield=True):  # a client gone away does not erase its write from the trail
                    await run_in_threadpool(trail.record, event)
