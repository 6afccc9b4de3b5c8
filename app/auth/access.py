"""The access check every route runs before its body: who the request is, and whether its route's rule lets it.

Who: the key in `Authorization: Bearer <key>` or `X-API-Key: <key>` (and, on console pages only, the key a person
signed in with, kept in an HttpOnly cookie). A key that is sent must be a live one, in
every mode (a client that sends a key means to be that key). With no key, the request is OPEN where the server is
open (app/auth/mode.py), and a 401 where keys are required, except on routes open to all (/healthz, the docs).

What: the route's rule (app/auth/rules.py). A role below the rule's is a 403 naming both; a collection or dataset
the key is not granted is the very 404 of a name that does not exist (app/db/repository.missing), so a key learns
nothing about what it may not see. Routes that take a name elsewhere (a body, a query parameter) call the checks
below with `current(request)`.
"""

from __future__ import annotations

import psycopg
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.failures import database_error
from app.auth import keys, ratelimit
from app.auth.mode import keys_required
from app.auth.principal import ANONYMOUS, OPEN, Principal
from app.auth.rules import Rule, api_routes, rule_of
from app.config import Settings
from app.console.errors import error_page, in_console, wants_html
from app.console.session import KEY_COOKIE
from app.db.models import Collection, Dataset
from app.db.repository import missing
from app.errors import AppError, ForbiddenError, UnauthorizedError

NO_KEY = "this route needs an API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
BAD_KEY = "the API key is not valid: it is unknown, expired or revoked"
IDENTITY = "identity"  # the request state's key of the principal Identify found


async def enforce(request: Request, rule: Rule) -> None:
    """Set request.state.principal, or refuse the request as RULE says. Who the request is was settled by
    Identify before its body was read; an app without that middleware settles it here."""
    principal = getattr(request.state, IDENTITY, None) or await identify(request, public=rule.role is None)
    allow(principal, rule, request.path_params)
    request.state.principal = principal
    if not getattr(request.state, "primary_only", False):  # a read run again on the primary was admitted once
        ratelimit.admit(request)


async def identify(request: Request, *, public: bool) -> Principal:
    """Who REQUEST acts as: its key's principal, OPEN where the server is open, ANONYMOUS on a PUBLIC route where
    keys are required; else a 401."""
    settings: Settings = request.app.state.settings
    token = sent_key(request)
    signed_in = token is None and (token := console_key(request)) is not None
    if token is not None:
        principal = await run_in_threadpool(_authenticate, request.app.state.engine, settings, token)
        if principal is not None:
            return principal
        if not signed_in:
            raise UnauthorizedError(BAD_KEY)
        # A console sign-in whose key has since expired or been revoked: as if signed out.
    if not keys_required(settings):
        return OPEN
    if public:
        return ANONYMOUS
    raise UnauthorizedError(NO_KEY)


class Identify:
    """Pure ASGI middleware: settles who a request is before FastAPI reads its body, so a missing or bad key is a
    401 even when the body is not JSON (FastAPI parses a body before it runs a route's dependencies). It finds the
    request's route to know whether the route is open to all; enforce() then applies the route's rule."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = _route_of(scope)
        rule = rule_of(route) if route is not None else None
        # The OpenAPI document is FastAPI's own route, not an APIRoute with a rule: open to all, like the docs.
        public = scope["path"] == scope["app"].openapi_url or (rule is not None and rule.role is None)
        request = Request(scope)
        try:
            principal = await identify(request, public=public)
        except (AppError, DBAPIError, psycopg.Error) as exc:
            if route is not None:
                scope["route"] = route  # so the audit trail records a refused write
            await (await _refusal(request, exc))(scope, receive, send)
            return
        scope.setdefault("state", {})[IDENTITY] = principal
        await self.app(scope, receive, send)


async def _refusal(request: Request, exc: Exception) -> Response:
    """The answer to a request Identify stops: the error's own (a 401), or the 503 of a database that does not
    answer the key's lookup, as the exception handlers give it from a route (any other error goes on up, to
    ErrorsAsJson's 500)."""
    if isinstance(exc, AppError):
        if wants_html(request):
            return error_page(request, exc.status, exc.to_dict())
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=dict(exc.headers))
    return await database_error(request, exc)


def _route_of(scope: Scope) -> APIRoute | None:
    """The API route SCOPE's method and path match, or None (an unknown path, or a known one with another method)."""
    app = scope["app"]
    routes: list[APIRoute] | None = getattr(app.state, "api_routes", None)
    if routes is None:
        routes = app.state.api_routes = api_routes(app)
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
    return None


def sent_key(request: Request) -> str | None:
    """The key the request sends, or None. Two different keys are a 401: which one the client meant is a guess.
    An Authorization header of another scheme (Basic, from a proxy in front) is not a key and is left alone."""
    sent = set()
    scheme, _, credentials = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        sent.add(credentials.strip())
    if "x-api-key" in request.headers:
        sent.add(request.headers["x-api-key"].strip())
    if len(sent) > 1:
        raise UnauthorizedError("the request sends two different API keys (Authorization and X-API-Key)")
    return sent.pop() if sent else None


def console_key(request: Request) -> str | None:
    """The key a person signed in to the console with (app/console/session.py): read for console pages only, so
    the API under /v1 takes keys from headers alone, and a page of another site cannot spend the cookie there."""
    if not in_console(request.url.path):
        return None
    return request.cookies.get(KEY_COOKIE) or None


def _authenticate(engine: Engine, settings: Settings, token: str) -> Principal | None:
    """The key's principal, looked up on a connection of its own in autocommit: the lookup is one statement with no
    BEGIN and COMMIT around it (this runs on every request with a key), and last_used_at, when it is written, is
    kept even if the request fails afterwards."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return keys.authenticate(conn, settings, token)


def allow(principal: Principal, rule: Rule, path_params: dict[str, str]) -> None:
    """Refuse PRINCIPAL what RULE does not let it do: a 403 for its role or a narrowed key, a 404 for a name."""
    if rule.role is not None and not principal.may(rule.role):
        raise ForbiddenError(
            f"this route needs a key of role {rule.role.name} or above; this key's role is {principal.role.name}",
            details={"needed": rule.role.name, "role": principal.role.name},
        )
    if rule.unrestricted and not principal.unrestricted:
        raise ForbiddenError("this route needs a key granted every collection and every dataset ('*')")
    if rule.collection is not None:
        check_collection(principal, path_params[rule.collection])
    if rule.dataset is not None:
        check_dataset(principal, path_params[rule.dataset])


def check_collection(principal: Principal, name: str) -> None:
    """The 404 of a collection that does not exist, unless PRINCIPAL is granted NAME."""
    if not principal.sees_collection(name):
        raise missing(Collection, name)


def check_dataset(principal: Principal, name: str) -> None:
    """The 404 of a dataset that does not exist, unless PRINCIPAL is granted NAME."""
    if not principal.sees_dataset(name):
        raise missing(Dataset, name)


def check_new_collection(principal: Principal, name: str) -> None:
    """A 403 for making a collection called NAME that PRINCIPAL is not granted."""
    if not principal.sees_collection(name):
        raise _not_granted("collection", name)


def check_new_dataset(principal: Principal, name: str) -> None:
    """A 403 for making a dataset called NAME that PRINCIPAL is not granted."""
    if not principal.sees_dataset(name):
        raise _not_granted("dataset", name)


def _not_granted(noun: str, name: str) -> ForbiddenError:
    """Not a 404: the refusal is the same whether the name is taken or not, so it confirms nothing."""
    return ForbiddenError(
        f"this key may not create a {noun} named {name!r}: it is not among the {noun}s the key is granted",
        details=[{"field": "body.name", "reason": "not granted to this key"}],
    )
