"""The total size of a request body, bounded before the routes see it: counted as it arrives, so that neither a
missing Content-Length (chunked transfer encoding) nor a multipart body of many files under the per-file limit
gets read past it.

A pure ASGI middleware, not BaseHTTPMiddleware, so that uploads and imports keep streaming through it. Starlette's
RequestBodyLimitMiddleware counts the same way, but answers in plain text and takes its per-route limits when the
routes are declared, before the settings are known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.errors import PayloadTooLargeError


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """At most BYTES in one body, a limit the setting SETTING (a Settings field) sets."""

    bytes: int
    setting: str

    def error(self, declared: int | None = None) -> PayloadTooLargeError:
        variable = f"MEMORA_{self.setting.upper()}"
        size = f"request body of {declared} bytes" if declared is not None else "request body"
        return PayloadTooLargeError(
            f"{size} exceeds the limit of {self.bytes} bytes ({variable})",
            details={"limit": self.bytes, "setting": variable},
        )


# The routes that take files: everything else is a JSON body, held in memory whole, and gets max_json_body_bytes.
_UPLOADS = (
    (re.compile(r"/v1/collections/[^/]+/documents"), "max_upload_bytes"),
    (re.compile(r"/v1/datasets/[^/]+/examples"), "max_upload_bytes"),
    (re.compile(r"/v1/datasets/[^/]+/import"), "max_import_bytes"),
)


def body_limit(settings: Settings, method: str, path: str) -> BodyLimit:
    """The limit of a METHOD request to PATH."""
    if method == "POST":
        for pattern, setting in _UPLOADS:
            if pattern.fullmatch(path):
                return BodyLimit(getattr(settings, setting), setting)
    return BodyLimit(settings.max_json_body_bytes, "max_json_body_bytes")


class _Exceeded(PayloadTooLargeError):
    """Raised from receive() once the body passes its limit; whatever the app makes of it, the answer is a 413."""


class BodyLimitMiddleware:
    """413 `payload_too_large` (the app's JSON error body) for a body over its limit: at once when Content-Length
    says so, before a byte is read; else as soon as the bytes received pass it, without reading the rest."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(self.settings, scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit.bytes:
            await _answer(limit.error(declared), scope, receive, send)
            return

        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise _Exceeded(limit.error().message)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.bytes:
                    exceeded = True
                    raise _Exceeded(limit.error().message)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # Once the body is over its limit, the app's own answer to the error (a 400 from FastAPI's body
            # parser, a 500) is not sent: the 413 below is.
            if exceeded and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await _answer(limit.error(), scope, receive, send)


async def _answer(error: PayloadTooLargeError, scope: Scope, receive: Receive, send: Send) -> None:
    # The unread rest of the body makes the server close the connection after this response.
    await JSONResponse(error.to_dict(), status_code=error.status, headers={"Connection": "close"})(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
