"""What each route asks of the request's principal, declared where the route is: `needs(Role.read,
collection="name")` on a router or route. Every route of the API carries exactly one rule (the access test walks
the route list and fails on one without), and app/auth/access.py enforces it before the route runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute

from app.auth.principal import Role


@dataclass(frozen=True)
class Rule:
    """ROLE: the least role the route needs; None for routes anyone may call without a key (/healthz, the docs).
    COLLECTION / DATASET: the path parameter that names the collection or dataset the route works on; a principal
    not granted it gets the same 404 as a name that does not exist. UNRESTRICTED: the route needs a key granted
    every collection and dataset (keys, the audit trail), since what it shows or makes is not one collection's."""

    role: Role | None
    collection: str | None = None
    dataset: str | None = None
    unrestricted: bool = False

    @property
    def writes(self) -> bool:
        """True for routes that change stored data (what the audit trail records)."""
        return self.role is not None and self.role >= Role.write


class _Check:
    """The dependency a rule becomes: one object per rule, so the rule can be read back from the route."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    async def __call__(self, request: Request) -> None:
        from app.auth.access import enforce

        await enforce(request, self.rule)


def needs(
    role: Role | None, *, collection: str | None = None, dataset: str | None = None, unrestricted: bool = False
) -> Any:
    """The dependency that enforces Rule(ROLE, ...) on a router or a route."""
    return Depends(_Check(Rule(role, collection, dataset, unrestricted)))


PUBLIC = needs(None)


def rule_of(route: APIRoute) -> Rule | None:
    """The rule declared on ROUTE (or its router), or None when it has none."""
    rules = [d.call.rule for d in route.dependant.dependencies if isinstance(d.call, _Check)]
    if len(rules) > 1:
        raise AssertionError(f"{route.path} {sorted(route.methods or ())} declares {len(rules)} access rules, not one")
    return rules[0] if rules else None


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every APIRoute of APP, those of included routers too (FastAPI keeps an included router whole, unflattened)."""
    found: list[APIRoute] = []
    pending: list[Any] = list(app.routes)
    while pending:
        route = pending.pop(0)
        if isinstance(route, APIRoute):
            found.append(route)
        elif (router := getattr(route, "original_router", None)) is not None:
            pending.extend(router.routes)
    return found
