"""The Host check: a request must name this server by a name it answers to, before any route runs.

Why: DNS rebinding. A web page on evil.example can make its own name resolve to 127.0.0.1 and then call a loopback
server from the victim's browser as "same origin"; the browser still sends `Host: evil.example`, so refusing names
we do not know closes that door whatever the mode. Allowed: the loopback names, the address the server is bound to
(not a wildcard: 0.0.0.0 says nothing about the names clients use) and MEMORA_ALLOWED_HOSTS (exact names,
`*.example.com`, or `*` for any). /healthz is exempt: load balancers probe by IP, and it shows no data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.errors import HostNotAllowedError

log = logging.getLogger("app.api")

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
EXEMPT_PATHS = frozenset({"/healthz"})


def host_name(host: str) -> str:
    """The name part of a Host header: lower case, without port, brackets or a final dot ("[::1]:8000" -> "::1")."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.removesuffix(".")


class AllowedHosts:
    """The names a server answers to: exact ones, `*.suffix` patterns, and `*`."""

    def __init__(self, patterns: Iterable[str]) -> None:
        names = {host_name(p) for p in patterns if p.strip()}
        self.any = "*" in names
        self.suffixes = tuple(name[1:] for name in names if name.startswith("*."))
        self.exact = frozenset(name for name in names if not name.startswith("*"))

    @classmethod
    def of(cls, settings: Settings) -> AllowedHosts:
        bound = [] if host_name(settings.host) in WILDCARD_ADDRESSES else [settings.host]
        return cls([*LOOPBACK_NAMES, *bound, *settings.allowed_hosts])

    def allows(self, host: str) -> bool:
        name = host_name(host)
        return self.any or name in self.exact or (bool(name) and name.endswith(self.suffixes))


def explain(settings: Settings) -> None:
    """At start-up, say what a server bound to every address answers to, when nothing was added: the request that
    names its IP or DNS name gets a 400, and this line says why before anyone asks."""
    if host_name(settings.host) in WILDCARD_ADDRESSES and not settings.allowed_hosts:
        log.info(
            "listening on %s, answering requests that name localhost, 127.0.0.1 or ::1 only; set "
            "MEMORA_ALLOWED_HOSTS to the names and addresses clients use to reach this server",
            settings.host or "every address",
        )


class HostCheck:
    """Pure ASGI middleware: a 400 `host_not_allowed` for a Host the server does not answer to."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.allowed = AllowedHosts.of(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        if self.allowed.allows(host):
            await self.app(scope, receive, send)
            return
        error = HostNotAllowedError(
            f"this server does not answer to the host {host_name(host) or '(none)'!r}: the names it answers to are "
            "localhost, its bound address and MEMORA_ALLOWED_HOSTS (comma-separated names, *.example.com patterns); "
            "add the name clients use to MEMORA_ALLOWED_HOSTS",
            details=[{"field": "header.host", "reason": "not an allowed host"}],
        )
        await JSONResponse(error.to_dict(), status_code=error.status)(scope, receive, send)
