"""Browsers and the API: CORS only for the origins MEMORA_CORS_ORIGINS lists, and no write from any other origin.

CORS alone does not stop a web page from writing: a browser sends a form or multipart POST to another origin without
asking first (no preflight), and only hides the answer from the page. So a page on evil.example could upload into a
loopback server in open mode. CrossOriginWrites refuses such requests before any route runs: a POST, PUT, PATCH or
DELETE whose Origin is another origin than the server's own and not a listed one, or that the browser marks
`Sec-Fetch-Site: cross-site`. Clients that are not browsers (curl, the SDKs, `memora`) send no Origin and pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.errors import CrossOriginError
from app.observe.context import HEADER as REQUEST_ID

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What Memora's clients send, and the headers of ours a page may read.
ALLOWED_HEADERS = ("Authorization", "X-API-Key", "Content-Type", REQUEST_ID)
EXPOSED_HEADERS = (REQUEST_ID, "X-Memora-Examples")


def listed_origins(settings: Settings) -> frozenset[str]:
    """MEMORA_CORS_ORIGINS as browsers write an Origin: lower case, no trailing slash."""
    return frozenset(origin.strip().rstrip("/").lower() for origin in settings.cors_origins if origin.strip())


def add_cors(app: FastAPI, settings: Settings) -> None:
    """Starlette's CORS for the listed origins only; nothing at all when none are listed (the default)."""
    origins = listed_origins(settings)
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=sorted(origins),
        allow_methods=["GET", "HEAD", *sorted(UNSAFE_METHODS)],
        allow_headers=list(ALLOWED_HEADERS),
        expose_headers=list(EXPOSED_HEADERS),
        allow_credentials=False,  # keys travel in headers the page sets, never in cookies
        max_age=600,
    )


class CrossOriginWrites:
    """Pure ASGI middleware: a 403 `cross_origin_request` for a write a web page of another origin sent."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.listed = listed_origins(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        reason = self.refusal(headers)
        if reason is None:
            await self.app(scope, receive, send)
            return
        error = CrossOriginError(
            f"{scope['method']} from a web page of another origin is refused: {reason}; list the page's origin in "
            "MEMORA_CORS_ORIGINS to let it write",
            details=[{"field": "header.origin", "reason": reason}],
        )
        await JSONResponse(error.to_dict(), status_code=error.status)(scope, receive, send)

    def refusal(self, headers: Headers) -> str | None:
        """Why a write with these headers comes from a foreign page, or None when it does not."""
        origin = headers.get("origin")
        if origin is not None:
            origin = origin.strip().rstrip("/").lower()
            if "*" in self.listed or origin in self.listed:
                return None
            # The scheme is not compared: behind a TLS proxy the server sees http while the page says https, and
            # no other origin can share this host and port.
            if origin == "null" or urlsplit(origin).netloc != headers.get("host", "").strip().lower():
                return f"Origin {origin!r} is neither this server nor a listed origin"
        if headers.get("sec-fetch-site", "").strip().lower() == "cross-site":
            return "the browser marks it Sec-Fetch-Site: cross-site"
        return None
