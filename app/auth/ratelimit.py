"""Requests per minute per API key: a token bucket per key, in this process's memory.

A key may send its whole minute's worth at once, then one more request each 60/limit seconds. The limit is the key's
own (memora.api_key.rate_limit) or MEMORA_RATE_LIMIT_PER_MINUTE; 0 or none: no limit (the default). Requests without
a key (open mode) are not limited: there is no one to limit. Per process: two `memora serve` processes behind a load
balancer each give a key its limit (docs/security.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from app.auth.principal import Principal, current
from app.config import Settings
from app.errors import RateLimitedError


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets by key id. CLOCK is monotonic seconds (tests pass their own)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._lock = threading.Lock()

    def wait(self, key_id: int, limit: int) -> float:
        """Take one request from KEY_ID's bucket of LIMIT per minute: 0 when allowed, else the seconds to wait."""
        rate = limit / 60.0
        with self._lock:
            now = self.clock()
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = _Bucket(tokens=float(limit), at=now)
            # A lowered limit caps what the bucket holds at once.
            bucket.tokens = min(float(limit), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate

    def admit(self, principal: Principal, settings: Settings) -> None:
        """Let PRINCIPAL's request through, or raise a 429 whose Retry-After is in whole seconds (at least 1)."""
        if principal.key_id is None:
            return
        limit = principal.rate_limit or settings.rate_limit_per_minute
        if not limit:
            return
        seconds = self.wait(principal.key_id, limit)
        if seconds > 0:
            retry = max(1, math.ceil(seconds))
            raise RateLimitedError(
                f"key {principal.name!r} is past its {limit} requests per minute; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )


def admit(request: Request) -> None:
    """The limit check of the request's principal (set by the access check), on the app's limiter."""
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.admit(current(request), request.app.state.settings)
