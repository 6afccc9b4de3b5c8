"""What the API answers when something fails that no route answered for: the database out of reach is a 503
`database_unavailable`, anything else a 500 `internal_error`; both in the JSON error body, and neither costs the
client its keep-alive connection.

Why not Starlette's own 500: its ServerErrorMiddleware sends a plain-text "Internal Server Error" and re-raises the
exception, and uvicorn closes the connection of an application that raised after its response started, so the
client's next request on that connection met a reset. Here the exception stops at the middleware, logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse

from app.db.availability import database_unavailable
from app.errors import AppError, DatabaseUnavailableError

if TYPE_CHECKING:
    from fastapi import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("app.api")


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    """A SQLAlchemy or psycopg error: 503 when the database is out of reach, else on to the 500 below."""
    if not database_unavailable(exc):
        raise exc
    log.warning("%s %s: the database is unavailable: %s", request.method, request.url.path, _reason(exc))
    error = DatabaseUnavailableError(f"the database is unavailable, try again shortly: {_reason(exc)}")
    return JSONResponse(error.to_dict(), status_code=error.status, headers={"Retry-After": "1"})


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


class ErrorsAsJson:
    """ASGI middleware: an unhandled exception becomes a logged 500 JSON body instead of propagating to the server.
    A response already started (a streamed export) cannot be replaced: that exception still propagates."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            if started:
                raise
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            error = AppError("internal error; the server log has the details")
            await JSONResponse(error.to_dict(), status_code=error.status)(scope, receive, send)
