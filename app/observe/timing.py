"""Where a request's time goes, told to the client as a `Server-Timing` header (MEMORA_SERVER_TIMING).

The middleware gives each request a Parts (a context variable: the route's thread sees the same object) and writes
the header when the response starts. Code marks its parts with `part("name")`; with the setting off there is no
Parts and a part costs a context variable read. Light on purpose, like context.py: the services import it.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar

HEADER = "Server-Timing"


class Parts:
    """Milliseconds by part of one request, in the order the parts first ran, and when its route returned."""

    __slots__ = ("ms", "route_end", "started")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.ms: dict[str, float] = {}
        self.route_end: float | None = None

    def header(self, now: float) -> str:
        """The header's value at NOW (the response's start): each part, `respond` (from the route's return to the
        response, its serialisation and what the session does at the end, less the parts timed there), `other` (the
        rest: reading and checking the request, access rules, the session's own statements) and `total`."""
        total = (now - self.started) * 1000
        ms = dict(self.ms)
        if self.route_end is not None:
            after = [name for name in ("commit",) if name in ms]
            ms["respond"] = (now - self.route_end) * 1000 - sum(ms[name] for name in after)
        ms["other"] = total - sum(ms.values())
        ms["total"] = total
        return ", ".join(f"{name};dur={value:.3f}" for name, value in ms.items())


_PARTS: ContextVar[Parts | None] = ContextVar("memora_server_timing", default=None)


def begin() -> Parts:
    """A new request's Parts (called by the middleware, in the request's context)."""
    parts = Parts()
    _PARTS.set(parts)
    return parts


class _Part:
    """The block a `with part(name)` times."""

    __slots__ = ("name", "parts", "started")

    def __init__(self, parts: Parts, name: str) -> None:
        self.parts, self.name = parts, name

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        ms = self.parts.ms
        ms[self.name] = ms.get(self.name, 0.0) + (time.perf_counter() - self.started) * 1000


_OFF = nullcontext()


def part(name: str) -> AbstractContextManager[None]:
    """Time the block as part NAME of the request (added up if it runs more than once). Off, a shared no-op: a
    context variable read, well under a microsecond."""
    parts = _PARTS.get()
    return _OFF if parts is None else _Part(parts, name)


def route_returned() -> None:
    """Mark the end of the route's own work: what follows until the response starts is `respond`."""
    parts = _PARTS.get()
    if parts is not None:
        parts.route_end = time.perf_counter()
